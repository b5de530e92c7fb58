"""`tfcf reproduce`: every figure and table command, one folder each, and an index page.

    tfcf reproduce --outdir outputs/reproduce            # settings that fit a 2-core CPU
    tfcf reproduce --full --outdir outputs/paper          # the papers' settings
    tfcf reproduce --only fig9 --only model1
    tfcf reproduce --docs                                 # every figure of docs/figures, refreshed
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from tfcf.experiments._common import step

# name -> (what it reproduces, options on this machine, options with --full, options --tiny)
PLAN = {
    "fig3b": ("ICLR 2020 Fig. 3b: elementary influence maps",
              [], ["--pairs", "1000", "--samples", "1000"],
              ["--pairs", "16", "--samples", "16"]),
    "fig8": ("ICLR 2020 Fig. 8: modules, module hybrids, magnitude of causal effects",
             [], ["--pairs", "1000", "--samples", "1000"],
             ["--pairs", "16", "--samples", "16", "--ks", "1,2", "--examples", "2"]),
    "fig9": ("ICLR 2020 Fig. 9: stability NMF vs k-means",
             [], ["--pairs", "1000", "--samples", "1000"],
             ["--pairs", "16", "--samples", "16", "--ks", "2,3", "--repeats", "2"]),
    "fig10": ("ICLR 2020 Fig. 10: more module hybrids",
              [], ["--pairs", "1000", "--samples", "1000", "--examples", "16"],
              ["--pairs", "16", "--samples", "16", "--examples", "2"]),
    "fig11": ("ICLR 2020 Fig. 11: GAN modules and hybrids",
              [], ["--pairs", "1000", "--samples", "1000"],
              ["--pairs", "16", "--samples", "16", "--ks", "1,2", "--examples", "2"]),
    "fig4": ("ICLR 2020 Fig. 4: one module in two successive layers",
             [], ["--pairs", "1000", "--samples", "1000"],
             ["--pairs", "16", "--samples", "16", "--examples", "2"]),
    "fig12": ("ICLR 2020 Fig. 12: more two-layer hybrids",
              [], ["--pairs", "1000", "--samples", "1000", "--examples", "16"],
              ["--pairs", "16", "--samples", "16", "--examples", "2"]),
    "draft-fig7": ("ICLR 2019 draft Fig. 7: variance statistic",
                   [], ["--pairs", "1000", "--samples", "1000"],
                   ["--pairs", "16", "--samples", "16", "--examples", "2"]),
    "model1": ("ICLR 2020 Prop. 3: Model 1 identifiability",
               [], ["--draws", "100"], ["--draws", "2", "--samples", "40", "--pairs", "40"]),
    "table2": ("ICLR 2020 Table 2: FID of module hybrids (needs real images R; about 45 min here)",
               ["--num-images", "2048"], ["--num-images", "10000", "--pairs", "1000", "--samples", "1000"],
               ["--num-images", "40", "--pairs", "16", "--samples", "16", "--fd-method", "eigh"]),
}
# --tiny (tests) runs on the miniature fixture module, whose Gblocks are 0..3.
_BIGGAN_TINY = ["--blocks", "1", "--samples", "8", "--pairs", "8", "--examples", "2"]
_BIGGAN_FULL = ["--samples", "256", "--pairs", "256", "--examples", "50"]
PLAN.update({
    "fig5": ("ICLR 2020 Figs. 1, 5, 13, 15: BigGAN-deep hybrids across classes (TF-Hub)",
             [], _BIGGAN_FULL, _BIGGAN_TINY),
    "fig6": ("ICLR 2020 Fig. 6: classifier recognition of BigGAN hybrids (TF-Hub)",
             [], _BIGGAN_FULL, _BIGGAN_TINY),
    "fig14": ("ICLR 2020 Fig. 14: entropy of resnet_v2_50 on koala/teddy hybrids (TF-Hub)",
              [], _BIGGAN_FULL, _BIGGAN_TINY),
    "fig16": ("ICLR 2020 Fig. 16: entropy of resnet_v2_50 on cock/ostrich hybrids (TF-Hub)",
              [], _BIGGAN_FULL, _BIGGAN_TINY),
    "table3": ("ICLR 2020 Table 3 / Fig. 17: four classifiers on chosen hybrids (TF-Hub)",
               [], _BIGGAN_FULL, _BIGGAN_TINY + ["--block", "1"]),
})


def _hub_missing(*classifiers):
    """Why the BigGAN commands cannot run offline (the folders to fill), or None."""
    from tfcf.biggan import BIGGAN_HANDLES
    from tfcf.hub import cache_folder, is_available
    from tfcf.imagenet import CLASSIFIERS

    handles = [BIGGAN_HANDLES[256]] + [CLASSIFIERS[name][0] for name in classifiers]
    missing = [h for h in handles if not is_available(h)]
    if not missing:
        return None
    return ("TF-Hub modules not in $TFHUB_CACHE_DIR: " + "; ".join(
        f"{h} -> {cache_folder(h)}" for h in missing) + " (see README, BigGAN section)")


PLAN.update({
    "sdr-fig3a": ("SDR paper Fig. 3a: one pathway, kernels and spectra", [], [], []),
    "sdr-fig4": ("SDR paper Fig. 4: SDR histograms per resolution, generator vs discriminator",
                 [], [], []),
    "sdr-fig5": ("SDR paper Fig. 5: SDR histograms, decoder vs encoder (VAE)", [], [], []),
    "sdr-fig6": ("SDR paper Fig. 6: removing low-energy, then low/high-SDR kernels", [],
                 ["--examples", "8"], ["--examples", "2"]),
    "sdr-fig10": ("SDR paper Fig. 10: more samples after removing low/high-SDR kernels", [],
                  [], ["--examples", "2"]),
    "sdr-fig7": ("SDR paper Figs. 7-9: VAE variants (channels x beta)", [], [],
                 ["--examples", "2"]),
    "sdr-fig8": ("SDR paper Fig. 8: encoder SDR histograms of the VAE variants", [], [], []),
    "sdr-fig11": ("SDR paper Fig. 11: random samples of the trained VAE", [], [],
                  ["--count", "4"]),
    "sdr-fig12": ("SDR paper Figs. 12-13: dropout DCGAN along training", [], [],
                  ["--examples", "2"]),
    "stretch-fig3": ("ICML 2018 workshop Fig. 3a-d: stretch distortion by wavelet scale", [],
                     ["--samples", "64"], ["--samples", "4", "--examples", "2"]),
    "stretch-fig4": ("ICML 2018 workshop Fig. 4a-c: stretch error along training, with and "
                     "without the SDR penalty", [], ["--samples", "64"], ["--samples", "4"]),
})

# The figures of docs/figures (linked from README.md and RESULTS.md), each from one run of a command
# on this machine's settings: run name -> (command, its arguments, {docs file: file of the run}).
# Table 2 needs the real faces ($TFCF_REAL_DATA) and about 45 min per model.
DOCS = {
    "fig3b_face_vae": ("fig3b", [], {"fig3b_face_vae_influence_maps.png": "influence_maps.png"}),
    "fig8_face_vae": ("fig8", [], {"fig8_face_vae_clusters.png": "clusters.png",
                                   "fig8_face_vae_hybrids.png": "hybrids.png",
                                   "fig8_face_vae_magnitude.png": "magnitude.png"}),
    "fig9_face_vae": ("fig9", [], {"fig9_face_vae_stability.png": "stability.png"}),
    # the 2019 draft's Fig. 6: Fig. 3's procedure on a VAE trained with beta divided by 10
    "draft_fig6_face_vae_beta10": ("fig8", ["--model", "vae_paper_celeba_beta10", "--ks", "1,2,3"],
                                   {"draft_fig6_face_vae_beta10_clusters.png": "clusters.png",
                                    "draft_fig6_face_vae_beta10_hybrids.png": "hybrids.png"}),
    "fig8_face_dcgan_pretrained": ("fig8", ["--model", "face_dcgan"],
                                   {"fig8_clusters.png": "clusters.png",
                                    "fig8_module_hybrids.png": "hybrids.png",
                                    "fig8_magnitude.png": "magnitude.png"}),
    "fig9_face_dcgan_pretrained": ("fig9", ["--model", "face_dcgan"],
                                   {"fig9_stability.png": "stability.png"}),
    "fig11_face_dcgan": ("fig11", [], {"fig11_face_dcgan_clusters.png": "clusters.png",
                                       "fig11_face_dcgan_hybrids.png": "hybrids.png"}),
    "fig11_fashion_dcgan": ("fig11", ["--model", "dcgan_paper_cifar10_fashion"],
                            {"fig11_fashion_dcgan_clusters.png": "clusters.png"}),
    "fig4_began_small": ("fig4", [], {"fig4_began_small_clusters.png": "clusters.png",
                                      "fig4_began_small_hybrids.png": "hybrids.png"}),
    "draft_fig7_fashion_dcgan": ("draft-fig7", [],
                                 {"draft_fig7_fashion_dcgan_clusters.png": "clusters.png"}),
    "model1": ("model1", [], {"model1.png": "model1.png"}),
    "sdr_fig3a": ("sdr-fig3a", [], {"sdr_fig3a_pathway.png": "pathway.png"}),
    "sdr_fig4_face_dcgan": ("sdr-fig4", [], {"sdr_fig4_face_dcgan_g_vs_d.png":
                                             "sdr_histograms.png"}),
    "sdr_fig4_pretrained": ("sdr-fig4", ["--model", "face_dcgan"],
                            {"sdr_fig4_generator.png": "sdr_histograms.png"}),
    "sdr_fig4_fashion_dcgan": ("sdr-fig4", ["--model", "dcgan_paper_cifar10_fashion"],
                               {"sdr_fig4_fashion_dcgan_g_vs_d.png": "sdr_histograms.png"}),
    "sdr_fig5_face_vae": ("sdr-fig5", [], {"sdr_fig5_face_vae_dec_vs_enc.png":
                                           "sdr_histograms.png"}),
    "sdr_fig5_fashion_vae": ("sdr-fig5", ["--model", "vae_paper_cifar10_fashion"],
                             {"sdr_fig5_fashion_vae_dec_vs_enc.png": "sdr_histograms.png"}),
    "sdr_fig6": ("sdr-fig6", [], {"sdr_fig6_removal.png": "removal.png"}),
    "sdr_fig7": ("sdr-fig7", [], {"sdr_fig7_vae_variants_histograms.png": "sdr_histograms.png",
                                  "sdr_fig7_vae_variants_samples.png": "samples.png"}),
    "sdr_fig8": ("sdr-fig8", [], {"sdr_fig8_vae_variants_encoders.png": "sdr_histograms.png"}),
    "sdr_fig11": ("sdr-fig11", [], {"sdr_fig11_face_vae_samples.png": "samples.png"}),
    "sdr_fig12": ("sdr-fig12", [], {"sdr_fig12_dropout_evolution.png": "evolution.png",
                                    "sdr_fig13_dropout_samples.png": "samples.png"}),
    "stretch_fig3_pretrained": ("stretch-fig3", ["--model", "face_dcgan", "--samples", "64"],
                                {"stretch_fig3_distortions.png": "distortions.png",
                                 "stretch_fig3_scale_errors.png": "scale_errors.png"}),
    "stretch_fig3_face_vae": ("stretch-fig3", ["--samples", "64"],
                              {"stretch_fig3_face_vae_distortions.png": "distortions.png",
                               "stretch_fig3_face_vae_scale_errors.png": "scale_errors.png"}),
    "stretch_fig4_penalty": ("stretch-fig4", ["--samples", "64"],
                             {"stretch_fig4_total_plain_vs_penalty.png": "total.png",
                              "stretch_fig4_per_scale_plain.png": "per_scale_1.png",
                              "stretch_fig4_per_scale_penalty.png": "per_scale_2.png"}),
    "stretch_fig4_face_vae": ("stretch-fig4", ["--samples", "64", "--model", "@FACE_VAE"],
                              {"stretch_fig4_face_vae_per_scale.png": "per_scale.png"}),
    "table2_began_small": ("table2", ["--num-images", "2048"],
                           {"table2_began_small_fid.png": "table2.png",
                            "table2_began_small_examples.png": "examples.png"}),
    "table2_face_dcgan_pretrained": ("table2", ["--num-images", "2048", "--model", "face_dcgan"],
                                     {"table2_fid.png": "table2.png",
                                      "table2_examples.png": "examples.png"}),
    # MobileStyleGAN (random-face's IR): 32 samples, 16 pairs per map, about 20 min per layer
    **{f"stylegan_modules_{size}": (
        "stylegan-modules", ["--layer", layer, "--samples", "32", "--pairs", "16"],
        {f"mobile_stylegan_{size}_{name}.png": f"{name}.png"
         for name in ("influence_maps", "clusters_k3", "clusters_k4", "hybrids_k3",
                      "hybrids_k4", "stability", "magnitude")})
       for size, layer in (("32", "LeakyRelu_342"), ("64", "LeakyRelu_442"))},
}


def _docs_arguments(arguments):
    """Placeholders of DOCS filled in: ``@FACE_VAE`` is the default face VAE's name."""
    from tfcf.experiments._common import FACE_VAE

    return [FACE_VAE if a == "@FACE_VAE" else a for a in arguments]


_ALL_CLASSIFIERS = ("inception_v3", "inception_resnet_v2", "nasnet_large", "resnet_v2_50")
# Commands that need data the user brings: name -> a function returning why they cannot run, or None.
NEEDS = {"table2": lambda: None if _real_data() else
         "no real images: set $TFCF_REAL_DATA to a folder of images or .npz shards (see tfcf table2 --help)",
         "fig5": lambda: _hub_missing(),
         "fig6": lambda: _hub_missing(*_ALL_CLASSIFIERS),
         "fig14": lambda: _hub_missing("resnet_v2_50"),
         "fig16": lambda: _hub_missing("resnet_v2_50"),
         "table3": lambda: _hub_missing(*_ALL_CLASSIFIERS),
         "stylegan-modules": lambda: _package_missing("random_face", "openvino")}


def _package_missing(*packages):
    """None when the packages import, else why not (MobileStyleGAN: random-face, openvino)."""
    import importlib.util

    absent = [name for name in packages if importlib.util.find_spec(name) is None]
    return (None if not absent else
            f"{', '.join(absent)} not installed (pip install --no-deps random-face==2021.7.21.1 "
            "openvino)")


def _real_data():
    from tfcf.experiments.table2 import default_real_data

    return default_real_data()


@click.command("reproduce")
@click.option("--outdir", type=click.Path(file_okay=False), default="outputs/reproduce",
              show_default=True, help="One sub-folder per command, plus index.html.")
@click.option("--full", is_flag=True, help="The papers' settings (1000 pairs, 100 Model 1 draws).")
@click.option("--tiny", is_flag=True, hidden=True, help="Smallest settings (tests).")
@click.option("--only", multiple=True, type=click.Choice(sorted(PLAN) + sorted(DOCS)),
              help="Run only these commands (repeatable); with --docs, these DOCS runs.")
@click.option("--docs", "docs_dir", type=click.Path(file_okay=False), default=None,
              is_flag=False, flag_value="docs/figures",
              help="Instead: the runs behind every figure of docs/figures (see DOCS in "
                   "tfcf/experiments/reproduce.py), each figure copied into this folder "
                   "[flag alone: docs/figures]; --only then names DOCS runs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Re-run commands whose results exist.")
@click.pass_context
def reproduce(ctx, outdir, full, tiny, only, docs_dir, seed, overwrite):
    """Run every experiment command and write an index page linking their outputs.

    Commands whose results.json already exists are skipped unless --overwrite, so an
    interrupted run resumes where it stopped.

    \b
    Examples:
      tfcf reproduce
      tfcf reproduce --full --outdir outputs/paper
    """
    if full and tiny:
        ctx.fail("--full and --tiny exclude each other")
    from tfcf.experiments.cli import main

    outdir = Path(outdir)
    if docs_dir is not None:
        unknown = [name for name in only if name not in DOCS]
        if unknown:
            ctx.fail(f"--only {', '.join(unknown)}: with --docs, --only names runs of DOCS: "
                     f"{', '.join(DOCS)}")
        if full or tiny:
            ctx.fail("--docs runs this machine's settings; it excludes --full and --tiny")
        _docs(ctx, main, outdir, Path(docs_dir), list(only) or list(DOCS), seed, overwrite)
        return
    unknown = [name for name in only if name not in PLAN]
    if unknown:
        ctx.fail(f"--only {', '.join(unknown)}: not a command; valid: {', '.join(PLAN)} (or, "
                 "with --docs, a DOCS run)")
    names = list(only) or list(PLAN)
    timings, skipped = {}, {}
    for position, name in enumerate(names, 1):
        target = outdir / name
        if (target / "results.json").exists() and not overwrite:
            step(f"[{position}/{len(names)}] {name}: results exist, skipped")
            continue
        description, normal, paper, smallest = PLAN[name]
        options = paper if full else smallest if tiny else normal
        missing = NEEDS[name]() if name in NEEDS else None
        if missing:
            step(f"[{position}/{len(names)}] {name}: skipped, {missing}")
            skipped[name] = missing
            continue
        step(f"[{position}/{len(names)}] {name}: {description}")
        started = time.time()
        command = main.get_command(ctx, name)
        args = options + ["--outdir", str(target), "--seed", str(seed), "--overwrite"]
        command.main(args=args, prog_name=f"tfcf {name}", standalone_mode=False)
        timings[name] = round(time.time() - started, 1)
    index = write_index(outdir, names, timings, skipped)
    step(f"wrote {index}")


def _docs(ctx, main, outdir, docs_dir, names, seed, overwrite):
    """Run the DOCS runs ``names`` into ``outdir/<run>`` and copy their figures to docs_dir."""
    import shutil

    from tfcf.io import atomic_path

    docs_dir.mkdir(parents=True, exist_ok=True)
    for position, name in enumerate(names, 1):
        command_name, arguments, files = DOCS[name]
        target = outdir / name
        missing = NEEDS[command_name]() if command_name in NEEDS else None
        if missing:
            step(f"[{position}/{len(names)}] {name}: skipped, {missing}")
            continue
        if (target / "results.json").exists() and not overwrite:
            step(f"[{position}/{len(names)}] {name}: results exist, figures copied again")
        else:
            arguments = _docs_arguments(arguments)
            step(f"[{position}/{len(names)}] {name}: tfcf {command_name} {' '.join(arguments)}")
            command = main.get_command(ctx, command_name)
            command.main(args=arguments + ["--outdir", str(target), "--seed", str(seed),
                                           "--overwrite"],
                         prog_name=f"tfcf {command_name}", standalone_mode=False)
        for doc, produced in files.items():
            with atomic_path(docs_dir / doc) as temporary:
                shutil.copyfile(target / produced, temporary)
            step(f"    {docs_dir / doc} <- {target / produced}")


def write_index(outdir, names, timings, skipped=None):
    """An HTML page: per command, what it reproduces, its main figure and key numbers."""
    from tfcf.report import Report

    report = Report("tfcf reproduce: the papers' figures",
                    "One section per command; each folder holds the PNG figures and a "
                    "results.json with every number, the parameters, seed and versions.")
    for name in names:
        folder = outdir / name
        results_path = folder / "results.json"
        if not results_path.exists():
            report.section(f"{name}: {PLAN[name][0]}", f"not run: {(skipped or {}).get(name, 'no results')}")
            continue
        results = json.loads(results_path.read_text())
        run = results.get("run", {})
        text = (f"Folder {name}/, run time {run.get('run_time_s', timings.get(name, '?'))} s. "
                + (results.get("note") or ""))
        pngs = [f for f in results.get("files", []) if f.endswith(".png")]
        report.section(f"{name}: {PLAN[name][0]}", text,
                       figure=folder / pngs[0] if pngs else None, caption=pngs[0] if pngs else "")
        for extra in pngs[1:]:
            report.figure(folder / extra, extra)
        if "adjusted_rand_index" in results:
            report.table(["pipeline", "mean ARI", "exact draws"],
                         [[k, v["mean"], v["fraction_exact"]]
                          for k, v in results["adjusted_rand_index"].items()])
        if "normalised" in results and "names" in results:
            names_ = results["names"]
            report.table(["", *names_], [[row] + [f"{results['normalised'][i][j]:.3f}" if j < i else ""
                                                   for j in range(len(names_))]
                                         for i, row in enumerate(names_)])
        if "nmf" in results and "kmeans" in results:
            report.table(["k", "NMF consistency", "k-means consistency", "NMF cosine",
                          "k-means cosine"],
                         [[k, a, b, c, d] for k, a, b, c, d in zip(
                             results["nmf"]["ks"], results["nmf"]["consistency_mean"],
                             results["kmeans"]["consistency_mean"], results["nmf"]["cosine_mean"],
                             results["kmeans"]["cosine_mean"])])
    return report.write(outdir / "index.html")

"""Choose the synapse stage's settings for the shipped networks on a validation volume.

Synthesises a ``train``-preset volume from a validation seed (never trained on, never
the eval set), runs the pipeline's segment and synapse-prediction steps once, then
re-runs synapse detection + partner assignment + graph for each setting and prints
synapse and edge F1. The chosen values go into ``pipeline.SYNAPSE_*``.

    .venv/bin/python benchmarks/tune_synapses.py [--seed 900] [--out /tmp/tune-synapses] [--reuse]
        [--thresholds 0.9 0.95] [--min-sizes 50 100 200] [--weights 25 50 100]
"""

import argparse
import itertools
import shutil
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=900)
    p.add_argument("--out", type=Path, default=Path("/tmp/tune-synapses"))
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.95])
    p.add_argument("--min-sizes", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--weights", type=float, nargs="+", default=[25, 50, 100])
    p.add_argument("--reuse", action="store_true", help="keep the run of an earlier call (same --out)")
    args = p.parse_args(argv)

    from connectomix import pipeline
    from connectomix.config import ClusterConfig
    from connectomix.synth import synthesize

    quiet = lambda m: None  # noqa: E731
    cl = ClusterConfig(scheduler="synchronous")
    first = not (args.reuse and (args.out / "volume.zarr" / "synapse_pred").exists())
    if first:
        shutil.rmtree(args.out, ignore_errors=True)
        synthesize(args.out, preset="train", seed=args.seed)
        pipeline.segment_stage(args.out, cluster=cl, say=quiet)
    print("threshold min_size_vx min_partner_weight | synapse P R F1 | edge F1 | n_pred n_gt")
    for th, ms, w in itertools.product(args.thresholds, args.min_sizes, args.weights):
        pipeline.synapses_pipeline_stage(args.out, threshold=th, predict=first, cluster=cl, say=quiet,
                                         min_size_vx=ms, min_partner_weight=w)
        first = False
        pipeline.graph_pipeline_stage(args.out, cluster=cl, say=quiet)
        s = pipeline.evaluate_stage(args.out, compute_erl=False)
        print(f"{th:9.2f} {ms:11d} {w:18.0f} | {s['synapse_precision']:.3f} {s['synapse_recall']:.3f} "
              f"{s['synapse_f1']:.3f} | {s['edge_f1']:.3f} | {s['synapse_n_pred']} {s['synapse_n_gt']}", flush=True)


if __name__ == "__main__":
    main()

"""Command line: `jemkit train | finetune | eval | sample | report | compare | demo | bench | presets`. Parses and dispatches only."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a stopped run: one line on stderr, exit status 2 (130/143 for signals)."""
    from .training import DivergenceError

    return (ValueError, TypeError, OSError, FloatingPointError, KeyError, DivergenceError, ImportError)


def cmd_train(a: argparse.Namespace) -> None:
    import shlex

    from .config import load_preset
    from .memory import steady_host_memory
    from .training import train

    cfg = load_preset(a.preset, a.set)
    if cfg.train.steady_memory:  # a process-wide allocator setting: the command line's decision, not train()'s
        steady_host_memory()
    r = train(cfg, a.out, overwrite=a.overwrite, resume=a.resume, progress=not a.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        if r.test_loss is not None:
            result = f"held-out score-matching loss {r.test_loss:.4f}"
        elif cfg.train.objective == "ebm":  # labels unused: its classifier head is untrained, its accuracy chance
            result = f"unconditional EBM (labels unused; probe its features: jemkit eval {shlex.quote(str(a.out))} --suite features)"
        else:
            result = f"test accuracy {r.test_accuracy:.4f}"
        print(f"{result} after {r.seconds:.0f}s; checkpoint: {r.checkpoint}")


def cmd_finetune(a: argparse.Namespace) -> None:
    import shlex

    from .memory import steady_host_memory
    from .training.finetune import Pretrained, finetune, finetune_config

    normalize = [*a.normalize[0], *a.normalize[1]] if a.normalize else None
    source = Pretrained(a.checkpoint, a.model, a.weights, a.stem, normalize)
    cfg = finetune_config(source, a.preset, a.data, a.set)
    if cfg.train.steady_memory:
        steady_host_memory()
    r = finetune(cfg, a.out, overwrite=a.overwrite, resume=a.resume, progress=not a.quiet)
    if os.environ.get("RANK", "0") == "0":
        run = shlex.quote(str(a.out))
        print(f"test accuracy {r.test_accuracy:.4f} after {r.seconds:.0f}s; checkpoint: {r.checkpoint}")
        print(f"compare with the model as it came: jemkit eval {run} --baseline {shlex.quote(str(Path(a.out) / 'pretrained'))} "
              f"--out {shlex.quote(str(Path(a.out) / 'eval'))}")


def cmd_eval(a: argparse.Namespace) -> None:
    from .data import parse_ood
    from .evaluation import evaluate
    from .report import summary_table

    model, data = _eval_model_and_data(a)
    suites = [s.strip() for s in a.suite.split(",") if s.strip()]
    options: dict = {}
    for (suite, key), value in a.option:
        options.setdefault(suite, {})[key] = value
    robustness = {**options.pop("robustness", {}), **dict(a.robustness)}
    robustness.update({f"{norm}_eps": eps for norm, eps in (("linf", a.linf_eps), ("l2", a.l2_eps)) if eps is not None})
    if robustness:
        options["robustness"] = robustness
    m = evaluate(model, a.out, baseline=a.baseline, suites=suites, device=a.device, fid_reference=a.fid_reference,
                 n_ood=a.n_ood, sample_steps=a.sample_steps, seed=a.seed, quick=a.quick, progress=not a.quiet,
                 options=options, inception=not a.no_inception,
                 data=data, ood=dict(parse_ood(t) for t in a.ood) or None)
    print(summary_table(m))
    print(f"metrics: {Path(a.out) / 'metrics.json'}")


MODEL_FLAGS = ("weights", "num_classes", "input", "normalize", "stem")


def _eval_model_and_data(a: argparse.Namespace):
    """(CHECKPOINT or the --model classifier, the --data set or None)."""
    from .checkpoint import load_external
    from .data import load_dataset

    if (a.checkpoint is None) == (a.model is None):
        raise ValueError("give either a CHECKPOINT or --model (exactly one)")
    data = load_dataset(a.data) if a.data else None
    if a.model is None:
        extra = [f"--{f.replace('_', '-')}" for f in MODEL_FLAGS if getattr(a, f) is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)} describe a --model; a checkpoint records its own")
        return a.checkpoint, data
    if data is None:
        raise ValueError("--model needs --data (a built-in dataset, npz:FILE or imagefolder:DIR)")
    model = load_external(a.model, a.input or data.shape, weights=a.weights, num_classes=a.num_classes or data.num_classes,
                          normalize=a.normalize, stem=a.stem)
    return model, data


def cmd_sample(a: argparse.Namespace) -> None:
    from .draw import draw
    from .utils import resolve_device

    print(draw(a.checkpoint, a.out, a.n, cls=a.cls, steps=a.steps, seed=a.seed, device=resolve_device(a.device), init=a.init))


def cmd_report(a: argparse.Namespace) -> None:
    from .report import write_report

    html, md = write_report(a.dir)
    print(f"report: {html}\n        {md}")


def cmd_compare(a: argparse.Namespace) -> None:
    from .compare import compare_runs, format_comparison

    record = compare_runs(a.runs, a.out, labels=a.labels, quality=a.quality)
    print(format_comparison(record))
    print(f"figure: {Path(a.out) / 'compare.png'}\nresults: {Path(a.out) / 'compare.json'}")


def cmd_demo(a: argparse.Namespace) -> None:
    from .demo import run_demo
    from .report import summary_table

    m = run_demo(a.out, a.set, overwrite=a.overwrite, progress=not a.quiet)
    print(summary_table(m))
    print(f"report: {Path(a.out).resolve() / 'report.html'}")


def cmd_presets(a: argparse.Namespace) -> None:
    from .config import preset_description, preset_names

    for name in preset_names():
        print(f"{name:<20} {preset_description(name)}")


def cmd_bench(a: argparse.Namespace) -> None:
    from .bench.command import run_command

    run_command(a)


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected CxHxW with positive integers (e.g. 1x28x28), got '{text}'")
    return tuple(int(p) for p in parts)


def _mean_std(text: str) -> tuple[list[float], list[float]]:
    """"0.5,0.5" or "m1,m2,m3,s1,s2,s3" → (means, stds): the first half of the numbers, then the second."""
    values = _floats(text)
    if not values or len(values) % 2:
        raise argparse.ArgumentTypeError(f"expected MEAN,STD or one mean per channel then one std per channel, got '{text}'")
    return values[: len(values) // 2], values[len(values) // 2 :]


def _suite_option(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` → (KEY, VALUE read as YAML: 200, 0.05, [bpda], true)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    value = yaml.safe_load(value)
    return key.strip(), tuple(value) if isinstance(value, list) else value


def _dotted_suite_option(text: str) -> tuple[tuple[str, str], object]:
    """``"SUITE.KEY=VALUE"`` → ((SUITE, KEY), VALUE read as YAML)."""
    key, value = _suite_option(text)
    suite, dot, name = key.partition(".")
    if not dot or not name:
        raise argparse.ArgumentTypeError(f"expected SUITE.KEY=VALUE (e.g. inpainting.init=mean), got '{text}'")
    return (suite, name), value


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


SETS = dict(action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. optim.lr=3e-4 (repeatable)")


def _train_args(t: argparse.ArgumentParser) -> None:
    t.add_argument("--preset", required=True, help="preset name (see `jemkit presets`)")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--set", **SETS)
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out even though its config differs (e.g. more steps); "
                        "a run with the same config resumes without this flag")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def _eval_args(e: argparse.ArgumentParser) -> None:
    e.add_argument("checkpoint", nargs="?", help="jemkit checkpoint or run directory (its latest checkpoint); or use --model")
    m = e.add_argument_group("your own classifier (instead of CHECKPOINT)")
    m.add_argument("--model", help="torchvision:NAME, timm:NAME (needs timm) or a TorchScript file; needs --data")
    m.add_argument("--weights", help="weights for torchvision:/timm: models: .safetensors, or .pt/.pth read with "
                                     "weights_only=True (a state_dict, also under 'state_dict'/'model', 'module.' prefix ok)")
    m.add_argument("--num-classes", type=int, help="classes of the model's head (default: those of --data)")
    m.add_argument("--input", type=_shape, help="the model's input CxHxW, e.g. 1x28x28 (default: the --data images' shape)")
    m.add_argument("--normalize", type=_mean_std, metavar="MEAN,STD",
                   help="the model's input normalization, one pair or one mean per channel then one std per channel "
                        "(0.5,0.5 or 0.485,0.456,0.406,0.229,0.224,0.225): it sees ((x+1)/2 - mean)/std of jemkit's "
                        "x in [-1, 1]; default: (x+1)/2 in [0, 1]")
    m.add_argument("--stem", choices=["default", "small"],
                   help="small: ResNet first conv 3x3 stride 1 and no max-pool (the usual change for 28x28/32x32 images)")
    e.add_argument("--data", help="evaluate on this dataset: a built-in name, npz:FILE or imagefolder:DIR "
                                  "(default: the checkpoint's own; required with --model)")
    e.add_argument("--ood", action="append", default=[], metavar="NAME=SPEC",
                   help="an OOD set of your own beside the built-in ones: NAME=npz:FILE or NAME=imagefolder:DIR (repeatable)")
    e.add_argument("--out", required=True, help="output directory for metrics.json and plots")
    e.add_argument("--baseline", help="checkpoint of the discriminative baseline to compare against")
    e.add_argument("--suite", default="accuracy,calibration,ood,samples",
                   help="comma-separated suites: accuracy, calibration, ood, samples, inpainting, distal, likelihood, "
                        "robustness, features, or all (default: accuracy,calibration,ood,samples)")
    e.add_argument("--quick", action="store_true", help="seconds-sized version of every suite (smoke runs)")
    e.add_argument("--linf-eps", type=_floats, help="robustness: L-inf epsilons in [0, 1] pixel units, e.g. 0,0.05,0.1")
    e.add_argument("--l2-eps", type=_floats, help="robustness: L2 epsilons in [0, 1] pixel units, e.g. 0,0.5,1")
    e.add_argument("--robustness", type=_suite_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a robustness suite option (repeatable), e.g. n_bare=200, n_defended=50, pgd_steps_bare=10, "
                        "defense_gradients=[bpda], purify_steps=3; an unknown key lists the options")
    e.add_argument("--option", type=_dotted_suite_option, action="append", default=[], metavar="SUITE.KEY=VALUE",
                   help="an option of any suite (repeatable), e.g. inpainting.init=uniform, inpainting.steps=20, "
                        "features.labels_per_class=10, likelihood.n_temps=2000, likelihood.bidirectional=false; an unknown "
                        "key lists the suite's options")
    e.add_argument("--no-inception", action="store_true",
                   help="skip Inception FID even when its weights are installed (it costs ~0.1 s per image on a CPU)")
    e.add_argument("--fid-reference", help="classifier checkpoint whose features define feature FID (default: the baseline)")
    e.add_argument("--n-ood", type=int, default=1000, help="examples per OOD set (default 1000)")
    e.add_argument("--sample-steps", type=int, default=None, help="SGLD steps of the samples suite's fresh chains (default: the checkpoint's sampler.fresh_steps, else the training sampler's)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")
    e.add_argument("--quiet", action="store_true")


def _finetune_args(f: argparse.ArgumentParser) -> None:
    f.add_argument("checkpoint", nargs="?", help="jemkit checkpoint or run directory to fine-tune (its architecture and "
                                                 "data unless --data / --set say otherwise); or use --model")
    m = f.add_argument_group("your own classifier (instead of CHECKPOINT)")
    m.add_argument("--model", help="torchvision:NAME or timm:NAME (needs timm); needs --weights and --data")
    m.add_argument("--weights", help="its pretrained weights: .safetensors, or .pt/.pth read with weights_only=True")
    m.add_argument("--stem", choices=["default", "small"], help="small: ResNet first conv 3x3 stride 1 and no max-pool")
    m.add_argument("--normalize", type=_mean_std, metavar="MEAN,STD",
                   help="the model's input normalization as in `jemkit eval` (default: (x+1)/2 in [0, 1])")
    f.add_argument("--data", help="train on this dataset: a built-in name, npz:FILE or imagefolder:DIR "
                                  "(default: the checkpoint's own; required with --model)")
    f.add_argument("--preset", default="finetune-jempp", help="training recipe (default finetune-jempp; see `jemkit presets`)")
    f.add_argument("--out", required=True, help="run directory; the model as it came is saved to OUT/pretrained")
    f.add_argument("--set", **SETS)
    f.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    f.add_argument("--resume", action="store_true", help="continue the run in --out even though its config differs")
    f.add_argument("--quiet", action="store_true", help="no progress bar")


def _sample_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("checkpoint")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--class", dest="cls", type=int, default=None, help="sample class C (E(x, y=C) = -f(x)[C])")
    s.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's sampler.fresh_steps, else the training sampler's)")
    s.add_argument("--init", default=None, choices=["uniform", "gaussian", "class_gaussian", "data", "buffer"],
                   help="where chains start (default: where the checkpoint's training chains started): U(-1, 1), "
                        "one Gaussian or class Gaussians fitted to the training set, held-out test images (of --class), or the saved "
                        "replay buffer")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")


def _report_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("dir")


def _compare_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("runs", nargs="+", help="run directories; the first is the reference")
    c.add_argument("--out", required=True, help="output directory for compare.png and compare.json")
    c.add_argument("--labels", type=_names, help="comma-separated names for the runs (default: directory names); "
                   "runs of one name are seeds of one recipe: mean ± std of best and final test accuracy per "
                   "recipe (and, with --quality, median times)")
    c.add_argument("--quality", action="store_true",
                   help="time to quality: first evaluation with test accuracy >= the first run's final - 1 point, ECE <= its "
                        "final ECE and class agreement >= 90%% (runs trained with train.eval_samples > 0); medians over seeds")


def _demo_args(d: argparse.ArgumentParser) -> None:
    d.add_argument("--out", default="jemkit-demo", help="output directory (default ./jemkit-demo)")
    d.add_argument("--set", **SETS)
    d.add_argument("--overwrite", action="store_true", help="replace runs already in --out")
    d.add_argument("--quiet", action="store_true")


def _bench_args(b: argparse.ArgumentParser) -> None:
    from .bench.command import add_arguments

    add_arguments(b)


COMMANDS = {  # name: (action, help, arguments)
    "train": (cmd_train, "train a model from a preset into a run directory", _train_args),
    "finetune": (cmd_finetune, "continue training a pretrained classifier (a checkpoint or --model with --weights) as a JEM",
                 _finetune_args),
    "eval": (cmd_eval, "evaluate a checkpoint (a run directory means its latest checkpoint) or your own classifier (--model)",
             _eval_args),
    "sample": (cmd_sample, "draw a grid of samples from fresh chains started where training started them", _sample_args),
    "report": (cmd_report, "write report.html and report.md for an eval directory", _report_args),
    "compare": (cmd_compare, "compare training runs: curves, time to the first run's accuracy, curve differences",
                _compare_args),
    "demo": (cmd_demo, "train JEM + baseline on the embedded digits, evaluate, report", _demo_args),
    "bench": (cmd_bench, "time jemkit's SGLD sampler and JEM iteration against a textbook baseline", _bench_args),
    "presets": (cmd_presets, "list training presets", lambda _: None),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jemkit", description="Train, sample and evaluate classifiers as energy-based models (JEM).")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (action, help_text, arguments) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        arguments(command)
        command.set_defaults(func=action)
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    from .memory import steady_host_memory
    from .training import TrainingInterrupted

    args = build_parser().parse_args(argv)
    logging.basicConfig(format="jemkit: %(message)s", level=logging.WARNING)
    if args.func not in (cmd_train, cmd_finetune):  # they apply it per train.steady_memory
        steady_host_memory()  # every other command samples or evaluates too (JEMKIT_STEADY_MEMORY=0 turns it off)
    try:
        args.func(args)
    except TrainingInterrupted as stop:
        print(f"jemkit: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except expected_errors() as err:
        if args.debug:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"jemkit: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``convnet`` command: ``train``, ``info``, ``verify`` and ``bench``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys

import numpy as np

from ._cli_checks import (
    UsageError,
    check_common,
    check_number,
    check_output,
    check_plot,
    make_output_folders,
    one_line,
)


def cmd_info(args) -> int:
    import numpy as np

    import convnet as cn

    print(f"convnet {cn.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    print(f"numpy {np.__version__}")
    for mod in ("numba", "torch", "cupy"):
        try:
            version = __import__(mod).__version__
        except ImportError:
            version = "not installed"
        print(f"{mod} {version}")
    print(f"threads {cn.get_num_threads()}")
    print(f"malloc {cn._allocator.malloc_state()}")
    native = cn.kernels._registry.get("native")
    print(f"cpu SIMD level (native build) {native.simd_level() if native else '-'}")
    print(f"cpu 16-bit kernels {_sixteen_bit_paths(native)}")
    print(f"gpu tensor cores {_tensor_core_kernels(cn)}")
    print(f"devices: cpu ({os.cpu_count()} cores visible)" + _cuda_devices())
    print("backends:")
    for name, info in cn.backends().items():
        state = "available  " if info["available"] else "unavailable"
        print(f"  {name:<7} {state} {info['detail']}")
    return 0


_BF16_PATHS = {"avx512bf16": "bfloat16 on vdpbf16ps (AVX512-BF16), float32 accumulation",
               "convert": "bfloat16 converted to float32 in packing (no AVX512-BF16 here)",
               "emulated": "bfloat16 pairs on AVX-512F FMAs (the test path)"}


def _sixteen_bit_paths(native) -> str:
    """Which 16-bit GEMM/conv path the native build runs (float16 is storage only)."""
    if native is None or not hasattr(native, "bf16_gemm_path"):
        return "float32 compute on 16-bit copies (no native 16-bit kernels)"
    f16 = ("float16 via F16C, float32 compute" if hasattr(native, "gemm_float16")
           else "float16 on float32 copies")
    return f"{_BF16_PATHS[native.bf16_gemm_path()]}; {f16}"


def _tensor_core_kernels(cn) -> str:
    """The CUDA build's tensor-core kernels and the TF32 switches (off unless allowed)."""
    try:
        from convnet import _cuda as ext
    except ImportError:
        return "none (convnet._cuda is not built)"
    if not hasattr(ext, "gemm_tc"):
        return "none in this build of convnet._cuda"
    on = {True: "allowed", False: "off"}
    return (f"float16/bfloat16 GEMM and conv2d on mma.sync m16n8k16, float32 accumulation "
            f"(built for {ext.compiled_archs()}); TF32 for float32: matmul "
            f"{on[bool(cn.backends.cuda.matmul.allow_tf32)]}, conv "
            f"{on[bool(cn.backends.cudnn.allow_tf32)]}")


def _cuda_devices() -> str:
    try:
        import cupy

        names = [cupy.cuda.runtime.getDeviceProperties(i)["name"].decode()
                 for i in range(cupy.cuda.runtime.getDeviceCount())]
    except Exception:  # no CuPy, no driver or no device: only the CPU to list
        return ""
    return "".join(f", cuda:{i} ({n})" for i, n in enumerate(names))


def cmd_verify(args) -> int:
    from . import verify

    backends = args.backend or None
    rows, ok = verify.run(backends)
    print(verify.format_rows(rows))
    print("all kernels agree with the references" if ok else "MISMATCH: see the FAIL rows above")
    return 0 if ok else 1


def cmd_bench(args) -> int:
    from . import bench
    from .kernels import backends as backends_info

    backends = args.backend or bench.default_backends()
    if "cuda" in backends and "cuda" not in bench.default_backends():
        print(f"convnet bench: the cuda backend is unavailable: "
              f"{backends_info()['cuda']['detail']}", file=sys.stderr)
        return 2
    cases = bench.all_cases(quick=args.quick, groups=set(args.only) if args.only else None)
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.group}: {case.name}", file=sys.stderr, flush=True)
        results.append(bench.run_case(case, backends, min_time=args.min_time))
    print(bench.format_table(results, backends))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "nadam": "NAdam", "sgd": "SGD",
              "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def _fail(message: str, command: str = "train") -> int:
    print(f"convnet {command}: error: {message}", file=sys.stderr)
    return 2


def validate_train_args(args) -> None:
    """Every check of ``convnet train`` that needs no data and no training, run before any
    work; raises UsageError with a one-line message."""
    from convnet.models import MODELS

    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; choose from "
                         f"{', '.join(sorted(MODELS))}")
    check_common(args)
    check_number(args, "lr", 0)
    check_number(args, "momentum", 0, 1, high_open=True)
    check_number(args, "weight-decay", 0)
    check_number(args, "clip-grad-norm", 0, low_open=True, allow_none=True)
    check_number(args, "early-stopping", 0)
    if args.nesterov and (args.optimizer != "sgd" or args.momentum <= 0):
        raise UsageError("--nesterov: needs --optimizer sgd and --momentum > 0")
    if args.device == "cuda":
        import convnet as cn

        if not cn.backends()["cuda"]["available"]:
            raise UsageError(f"--device cuda: {cn.backends()['cuda']['detail']}")
    args.precision = resolve_precision(args)
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint FILE (the checkpoint to continue)")
    check_output("--report", args.report)
    check_output("--checkpoint", args.checkpoint)
    if args.plot:
        check_output("--plot", args.plot)
        check_plot(args.plot)
    if args.resume:
        _check_resume(args)


def resolve_precision(args) -> str:
    """--precision, with --amp read as the device's default 16-bit type; both given and
    different is an error."""
    from convnet.amp.precision import DEFAULT_AMP

    precision = getattr(args, "precision", None)
    if getattr(args, "amp", False):
        amp = DEFAULT_AMP[args.device]
        if precision not in (None, amp):
            raise UsageError(f"--amp means --precision {amp} on {args.device}; it conflicts "
                             f"with --precision {precision} (give one of them)")
        return amp
    return precision or "fp32"


def run_description(args) -> dict:
    """What a checkpoint remembers of its run, compared on --resume. Everything here must
    match; --epochs may grow (to continue a run) and the data folder, threads, backend,
    device and outputs may change."""
    training = {k: getattr(args, k) for k in (
        "optimizer", "lr", "weight_decay", "schedule", "clip_grad_norm", "batch_size",
        "seed", "val_fraction", "limit", "augment", "precision")}
    if args.optimizer in ("sgd", "rmsprop"):
        training["momentum"] = args.momentum
    if args.optimizer == "sgd":
        training["nesterov"] = args.nesterov
    return {"model": args.model, "model_options": _model_kwargs(args.model, args),
            "training": training}


def _check_resume(args) -> None:
    import convnet as cn
    from convnet.train import run_mismatches

    path = args.checkpoint
    if not os.path.exists(path):
        raise UsageError(f"--resume: no checkpoint at {path}")
    try:
        state = cn.load(path)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--resume: {one_line(exc)}") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch"} <= set(state):
        raise UsageError(f"--resume: {path} is not a training checkpoint")
    run = state.get("run")
    if isinstance(run, dict):
        diff = run_mismatches(run, run_description(args))
        if diff:
            raise UsageError(f"--resume: {path} was written by another run ({'; '.join(diff)});"
                             " use the same options, or another --checkpoint for a new run")
    # then the state itself, against a model and optimizer built as this run builds them
    from convnet.models import get_model
    from convnet.train import check_checkpoint

    model = get_model(args.model, **_model_kwargs(args.model, args))
    optimizer = _make_optimizer(args, model.parameters())
    try:
        check_checkpoint(state, model, optimizer, _make_scheduler(args, optimizer),
                         where=f"--resume: {path}")
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(one_line(exc.args[0] if exc.args else exc)) from None


def _make_optimizer(args, params):
    import convnet as cn

    cls = getattr(cn.optim, OPTIMIZERS[args.optimizer])
    kwargs = {"lr": args.lr, "weight_decay": args.weight_decay}
    if args.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = args.momentum
    if args.optimizer == "sgd" and args.momentum > 0:
        kwargs["nesterov"] = args.nesterov
    return cls(params, **kwargs)


def _make_scheduler(args, optimizer):
    import convnet as cn

    if args.schedule == "cosine":
        return cn.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, args.epochs))
    if args.schedule == "step":
        return cn.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, args.epochs // 3))
    return None


def _model_kwargs(name: str, args) -> dict:
    kwargs = {"num_classes": 10, "in_channels": 1}
    if name.startswith("lenet"):
        kwargs.update(activation=args.activation, pooling=args.pooling)
    if name.startswith("resnet"):
        kwargs["small_input"] = True  # 28x28 images: 3x3 stem, no max pooling
    return kwargs


def _init_distributed() -> int:
    """Join the mpiexec ranks; the other ranks than 0 print nothing (errors still show)."""
    import convnet.distributed as dist
    from convnet.distributed._group import _get

    dist.init_process_group("mpi")
    rank = dist.get_rank()
    if rank == 0:
        # mpiexec names a killed rank by its pid: this line maps it back to the rank
        peers = _get().peers
        print("ranks: " + ", ".join(f"{r} = pid {pid} on {host}"
                                    for r, (host, pid) in enumerate(peers)))
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    return rank


def _distribute(model, loaders):
    """DistributedDataParallel around ``model`` (its batch norms synchronised), and the
    loaders sharded so that the ranks split every batch."""
    import convnet as cn
    import convnet.distributed as dist

    model = cn.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = cn.nn.parallel.DistributedDataParallel(model)
    return net, tuple(dist.shard_loader(loader) for loader in loaders)


def cmd_train(args) -> int:
    import convnet as cn
    from convnet import train as T
    from convnet.data import fashion_mnist_loaders
    from convnet.models import get_model

    make_output_folders(args.report, args.plot, args.checkpoint)
    if args.threads:
        cn.set_num_threads(args.threads)
    rank = _init_distributed() if args.distributed else 0
    cn.manual_seed(args.seed)
    try:
        train_loader, val_loader, test_loader, info = fashion_mnist_loaders(
            root=args.data, batch_size=args.batch_size, val_fraction=args.val_fraction,
            augment=args.augment, seed=args.seed, limit=args.limit)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    model = get_model(args.model, **_model_kwargs(args.model, args))
    if args.device == "cuda":
        model.to("cuda")
    net = model
    if args.distributed:
        net, (train_loader, val_loader, test_loader) = _distribute(
            model, (train_loader, val_loader, test_loader))
    backend = "cuda" if args.device == "cuda" else (args.backend or
                                                     cn.kernels._registry.default_cpu())
    print(f"model {args.model}: {model.num_parameters():,} parameters; data: {info['source']} "
          f"({info['n_train']} train / {info['n_val']} validation / {info['n_test']} test); "
          f"device {args.device}, backend {backend}, {cn.get_num_threads()} threads")
    optimizer = _make_optimizer(args, model.parameters())
    callbacks = []
    if args.early_stopping:
        callbacks.append(T.EarlyStopping(patience=args.early_stopping,
                                         restore_best_weights=True))
    if args.checkpoint:
        callbacks.append(T.ModelCheckpoint(args.checkpoint))
    scheduler = _make_scheduler(args, optimizer)
    resume = args.checkpoint if args.resume else None
    context = cn.kernels.use_backend(backend) if backend != "cuda" else contextlib.nullcontext()
    cn.memory.reset_peak_memory_stats(args.device)
    with context:
        history = T.fit(net, train_loader, val_loader, epochs=args.epochs,
                        optimizer=optimizer, callbacks=callbacks, scheduler=scheduler,
                        clip_grad_norm=args.clip_grad_norm, resume=resume,
                        progress=not args.no_progress, device=args.device,
                        run=run_description(args), precision=args.precision)
        test_loss, test_acc = T.evaluate(net, test_loader, device=args.device,
                                         precision=args.precision)
    # live tensor bytes at the run's peak: data, model, optimizer state, activations
    peak_mb = cn.memory.max_memory_allocated(args.device) / 2**20
    seconds = [s for s in history["epoch_seconds"] if s is not None]
    print(f"test accuracy {test_acc:.4f}  test loss {test_loss:.4f}  "
          f"({len(history['loss'])} epochs, {sum(seconds):.1f}s training, "
          f"{np.median(seconds) if seconds else 0:.2f}s per epoch; precision "
          f"{args.precision}, peak memory {peak_mb:.1f} MiB)")
    if rank != 0:
        return 0  # rank 0 writes the plot and the report
    if args.plot:
        T.plot_history(history, args.plot)
        print(f"learning curves written to {args.plot}")
    if args.report:
        report = {"model": args.model, "test_accuracy": test_acc, "test_loss": test_loss,
                  "epochs": len(history["loss"]), "epoch_seconds": history["epoch_seconds"],
                  "device": args.device, "backend": backend, "threads": cn.get_num_threads(),
                  "parameters": model.num_parameters(), "data": info,
                  "precision": args.precision, "peak_memory_mb": round(peak_mb, 3),
                  "options": {k: v for k, v in vars(args).items() if k != "func"},
                  "history": history}
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1, default=str)
        print(f"report written to {args.report}")
    return 0


def cmd_tune(args) -> int:
    import convnet as cn
    from convnet import train as T
    from convnet import tune

    try:
        from convnet.data import fashion_mnist_loaders
    except ImportError as exc:
        return _fail(f"cannot import the data package ({exc})")
    if args.threads:
        cn.set_num_threads(args.threads)
    loaders: dict[int, tuple] = {}

    def objective(params: dict) -> float:
        batch = int(params.get("batch_size", args.batch_size))
        if batch not in loaders:
            loaders[batch] = fashion_mnist_loaders(root=args.data, batch_size=batch,
                                                   val_fraction=args.val_fraction,
                                                   seed=args.seed, limit=args.limit)
        train_loader, val_loader, _, _ = loaders[batch]
        cn.manual_seed(args.seed)
        model = tune.mlp(width=int(params.get("width", 256)),
                         depth=int(params.get("depth", 2)),
                         dropout=float(params.get("dropout", 0.0)))
        opt_args = argparse.Namespace(optimizer=params.get("optimizer", "adam"),
                                      lr=float(params.get("lr", 1e-3)), weight_decay=0.0,
                                      momentum=0.9, nesterov=False)
        history = T.fit(model, train_loader, val_loader, epochs=args.epochs,
                        optimizer=_make_optimizer(opt_args, model.parameters()),
                        progress=False, log=lambda s: None)
        return max(history["val_accuracy"])

    if args.method == "grid":
        results = tune.grid_search(objective, tune.DEFAULT_GRID)
    else:
        results = tune.random_search(objective, tune.DEFAULT_SPACE, args.trials, seed=args.seed)
    print(tune.format_results(results))
    best = tune.save_best(results, args.output)
    print(f"best: {best['params']} (validation accuracy {best['score']:.4f}), saved to "
          f"{args.output}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_debug(p) -> None:
    # SUPPRESS: the sub-command's default must not hide "convnet --debug train ..."
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error instead of one line")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convnet", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a model on Fashion-MNIST (the embedded sample "
                       "when the full data set is not found)")
    p.add_argument("model", help="lenet, alexnet, vgg11..vgg19[_bn], googlenet, resnet18/34/50")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--momentum", type=float, default=0.9, help="for sgd and rmsprop")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=["none", "cosine", "step"], default="none",
                   help="learning-rate schedule over the epochs")
    p.add_argument("--clip-grad-norm", type=float, default=None)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                   help="fp32 (default), or mixed precision under autocast: bf16, fp16 "
                        "(with loss scaling); the weights stay float32")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision in the device's default 16-bit type (bf16 on the "
                        "CPU, fp16 on CUDA)")
    p.add_argument("--backend", choices=["native", "numba"], default=None,
                   help="CPU kernels to use (default: native when built)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder with the Fashion-MNIST IDX files (else $CONVNET_DATA, "
                   "/usr/share/datasets/fashion-mnist, then the embedded sample)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images (quick runs)")
    p.add_argument("--augment", action="store_true", help="random shifts and flips")
    p.add_argument("--early-stopping", type=int, metavar="N", default=0,
                   help="stop after N epochs without validation improvement (best weights "
                   "restored)")
    p.add_argument("--checkpoint", metavar="FILE", help="write a checkpoint every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint; the model, its options and the training "
                   "options (optimizer, lr, momentum, schedule, batch size, seed...) must be "
                   "those of the checkpoint's run, --epochs may grow")
    p.add_argument("--plot", metavar="FILE.png", help="write learning curves")
    p.add_argument("--report", metavar="FILE.json", help="write results as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--activation", choices=["tanh", "relu"], default="tanh",
                   help="LeNet-5's activation (the course's is tanh)")
    p.add_argument("--pooling", choices=["avg", "max"], default="avg",
                   help="LeNet-5's pooling (the course's is average)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of mpiexec (mpiexec -n 2 convnet "
                        "train ... --distributed); --batch-size is the global batch")
    _add_debug(p)
    p.set_defaults(func=cmd_train, validate=validate_train_args)

    p = sub.add_parser("tune", help="grid or random search of an MLP's hyperparameters "
                       "(learning rate, batch size, width, optimizer, dropout)")
    p.add_argument("--method", choices=["random", "grid"], default="random")
    p.add_argument("--trials", type=int, default=8, help="random search: configurations")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    p.add_argument("--batch-size", type=int, default=128, help="when not searched")
    p.add_argument("--limit", type=int, default=10000, help="training images per trial")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--data", metavar="DIR", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="best_config.json", help="where the best goes")
    _add_debug(p)
    p.set_defaults(func=cmd_tune, validate=validate_tune_args)

    p = sub.add_parser("info", help="versions, backends (and why one is missing), threads, SIMD")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("verify", help="check every kernel on every backend against references")
    p.add_argument("--backend", action="append", choices=["native", "numba", "cuda"],
                   help="only this backend (repeatable); default: all available")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="time the kernels against NumPy/PyTorch (and cuBLAS, "
                       "cuDNN, copy bandwidth on a GPU), print ratios")
    p.add_argument("--backend", action="append", choices=["native", "numba", "cuda"],
                   help="only this backend (repeatable); default: all available, cuda "
                        "included when a GPU is")
    p.add_argument("--only", action="append", choices=["gemm", "conv", "pool", "bn", "upsample",
                                                   "deconv", "bf16"],
                   help="only this group of kernels (repeatable)")
    p.add_argument("--quick", action="store_true", help="fewer and smaller shapes")
    p.add_argument("--min-time", type=float, default=0.6,
                   help="seconds of timing per implementation and case (default 0.6)")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.set_defaults(func=cmd_bench)
    return parser


def validate_tune_args(args) -> None:
    check_common(args)
    check_number(args, "trials", 1)
    check_output("--output", args.output)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validator = getattr(args, "validate", None)  # the command's checks, before any work
    try:
        if validator is not None:
            validator(args)
    except UsageError as exc:
        if args.debug:
            raise
        return _fail(str(exc), args.command)
    import convnet as cn

    if getattr(args, "threads", None):
        cn.set_num_threads(args.threads)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a fault met while working: one line unless --debug
        if args.debug:
            raise
        print(f"convnet {args.command}: error: {type(exc).__name__}: {one_line(exc)} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

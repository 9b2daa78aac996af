"""The ``convnet`` command: ``train``, ``info``, ``verify`` and ``bench``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys

import numpy as np


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
    native = cn.kernels._registry.get("native")
    print(f"cpu SIMD level (native build) {native.simd_level() if native else '-'}")
    print(f"devices: cpu ({os.cpu_count()} cores visible)" + _cuda_devices())
    print("backends:")
    for name, info in cn.backends().items():
        state = "available  " if info["available"] else "unavailable"
        print(f"  {name:<7} {state} {info['detail']}")
    return 0


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


def _fail(message: str) -> int:
    print(f"convnet train: error: {message}", file=sys.stderr)
    return 2


def _make_optimizer(args, params):
    import convnet as cn

    cls = getattr(cn.optim, OPTIMIZERS[args.optimizer])
    kwargs = {"lr": args.lr, "weight_decay": args.weight_decay}
    if args.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = args.momentum
    if args.optimizer == "sgd" and args.momentum > 0:
        kwargs["nesterov"] = args.nesterov
    return cls(params, **kwargs)


def _model_kwargs(name: str, args) -> dict:
    kwargs = {"num_classes": 10, "in_channels": 1}
    if name.startswith("lenet"):
        kwargs.update(activation=args.activation, pooling=args.pooling)
    if name.startswith("resnet"):
        kwargs["small_input"] = True  # 28x28 images: 3x3 stem, no max pooling
    return kwargs


def cmd_train(args) -> int:
    import convnet as cn
    from convnet import train as T

    try:
        from convnet.data import fashion_mnist_loaders
        from convnet.models import MODELS, get_model
    except ImportError as exc:  # a broken install, not a user error
        return _fail(f"cannot import the data or model zoo ({exc})")
    if args.model not in MODELS:
        return _fail(f"unknown model {args.model!r}; choose from {', '.join(sorted(MODELS))}")
    if args.device == "cuda" and not cn.backends()["cuda"]["available"]:
        return _fail(f"--device cuda: {cn.backends()['cuda']['detail']}")
    if args.resume and not args.checkpoint:
        return _fail("--resume needs --checkpoint FILE (the checkpoint to continue)")
    if args.threads:
        cn.set_num_threads(args.threads)
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
    scheduler = None
    if args.schedule == "cosine":
        scheduler = cn.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    elif args.schedule == "step":
        scheduler = cn.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, args.epochs // 3))
    resume = args.checkpoint if args.resume else None
    if resume and not os.path.exists(resume):
        return _fail(f"--resume: no checkpoint at {resume}")
    context = cn.kernels.use_backend(backend) if backend != "cuda" else contextlib.nullcontext()
    with context:
        history = T.fit(model, train_loader, val_loader, epochs=args.epochs,
                        optimizer=optimizer, callbacks=callbacks, scheduler=scheduler,
                        clip_grad_norm=args.clip_grad_norm, resume=resume,
                        progress=not args.no_progress, device=args.device)
        test_loss, test_acc = T.evaluate(model, test_loader, device=args.device)
    seconds = [s for s in history["epoch_seconds"] if s is not None]
    print(f"test accuracy {test_acc:.4f}  test loss {test_loss:.4f}  "
          f"({len(history['loss'])} epochs, {sum(seconds):.1f}s training, "
          f"{np.median(seconds) if seconds else 0:.2f}s per epoch)")
    if args.plot:
        T.plot_history(history, args.plot)
        print(f"learning curves written to {args.plot}")
    if args.report:
        report = {"model": args.model, "test_accuracy": test_acc, "test_loss": test_loss,
                  "epochs": len(history["loss"]), "epoch_seconds": history["epoch_seconds"],
                  "device": args.device, "backend": backend, "threads": cn.get_num_threads(),
                  "parameters": model.num_parameters(), "data": info,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--plot", metavar="FILE.png", help="write learning curves")
    p.add_argument("--report", metavar="FILE.json", help="write results as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--activation", choices=["tanh", "relu"], default="tanh",
                   help="LeNet-5's activation (the course's is tanh)")
    p.add_argument("--pooling", choices=["avg", "max"], default="avg",
                   help="LeNet-5's pooling (the course's is average)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

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
    p.set_defaults(func=cmd_tune)

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
                                                   "deconv"],
                   help="only this group of kernels (repeatable)")
    p.add_argument("--quick", action="store_true", help="fewer and smaller shapes")
    p.add_argument("--min-time", type=float, default=0.6,
                   help="seconds of timing per implementation and case (default 0.6)")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import convnet as cn

    if getattr(args, "threads", None):
        cn.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

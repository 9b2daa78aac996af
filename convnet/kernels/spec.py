"""The kernel manifest: every backend-level kernel, its arguments and their roles.

This is the one list of kernel names. Each backend (``convnet._C``, the Numba module, the
CUDA adapter) must expose exactly these functions, with these arguments in this order;
:func:`check_backend` verifies that when a backend is loaded. ``convnet verify``, the CUDA
build test, ``convnet.kernels.__all__`` and the kernel table in the docs
(:func:`markdown_table`) are derived from it, and so is the validation boundary
(``convnet.kernels._boundary``) that every call crosses before any backend runs.

Roles:

* ``IN`` a float array read; ``OUT`` a float array written (fully overwritten unless the
  kernel says it accumulates); ``INOUT`` read and written; ``OPT`` an optional float input
  (None allowed); ``OPT_INOUT`` an optional read-and-written buffer.
* ``INDEX`` an int64 array read as positions (its range is a rule of the kernel);
  ``INDEX_OUT`` an int64 array written.
* ``INT`` an integer scalar in ``[lo, hi]`` (geometry: hi defaults to 2**31 - 1, so that every
  product of two of them fits in 64 bits); ``FLOAT`` a finite float in ``[lo, hi]``;
  ``BOOL`` a flag.

Dtypes: a call's dtype is the one of its first float input; it must be one of the kernel's
``dtypes`` (float32, float64, and the 16-bit bfloat16 and float16). Every float array of
the call has that dtype, except the arguments marked ``STAT`` (float32 when the call is
16-bit: the statistics of batch norm) and ``ACC`` (the call's dtype, or float32 when the
call is 16-bit: GEMM's C, a bias or a weight gradient accumulated in float32). A 16-bit call
runs the backend's ``<kernel>_<dtype>`` function when it has one (native bf16 GEMM/conv),
else in float32 on the 16-bit storage: the inputs upcast, the float32 kernel, the results
rounded (to nearest even) into the 16-bit outputs. Arrays are C-contiguous
(the array-level API copies non-contiguous inputs first; the backend level refuses them);
an output never overlaps another array of the call unless the kernel lists the pair in
``alias`` (the cell kernels work in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field

IN, OUT, INOUT, OPT, OPT_INOUT = "in", "out", "inout", "opt", "opt_inout"
INDEX, INDEX_OUT = "index", "index_out"
INT, FLOAT, BOOL = "int", "float", "bool"

CALL, STAT, ACC = "call", "stat", "acc"  # an array's dtype: see the module docstring
FLOAT_TYPES = ("float32", "float64", "bfloat16", "float16")
SIXTEEN_BIT = ("bfloat16", "float16")

ARRAY_ROLES = (IN, OUT, INOUT, OPT, OPT_INOUT, INDEX, INDEX_OUT)
WRITTEN_ROLES = (OUT, INOUT, OPT_INOUT, INDEX_OUT)
INT_MAX = 2**31 - 1
FLOAT_MAX = 1e300


@dataclass(frozen=True)
class Arg:
    name: str
    role: str
    ndim: int | None = None  # arrays: the rank; None = any
    lo: float | None = None  # scalars: the range
    hi: float | None = None
    example: float | None = None  # scalars: a typical value (convnet verify uses it)
    dtype: str = CALL  # float arrays: CALL, STAT or ACC


@dataclass(frozen=True)
class Kernel:
    name: str
    op: str  # the module of convnet.kernels that calls it
    args: tuple[Arg, ...]
    doc: str
    alias: frozenset = field(default_factory=frozenset)  # (written, other) pairs allowed
    dtypes: tuple[str, ...] = FLOAT_TYPES  # the dtypes a call may have

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)


def _a(name, role, ndim=None, dtype=CALL):
    return Arg(name, role, ndim, dtype=dtype)


def _i(name, lo=0, hi=INT_MAX, example=None):
    return Arg(name, INT, None, lo, hi, example)


def _f(name, lo=-FLOAT_MAX, hi=FLOAT_MAX, example=None):
    return Arg(name, FLOAT, None, lo, hi, example)


def _b(name):
    return Arg(name, BOOL)


_CONV = (_i("sh", 1), _i("sw", 1), _i("ph"), _i("pw"), _i("dh", 1), _i("dw", 1))
_POOL = (_i("kh", 1), _i("kw", 1), _i("sh", 1), _i("sw", 1), _i("ph"), _i("pw"))
_SCALES = (_f("scale_h", hi=1e12), _f("scale_w", hi=1e12))  # <= 0: the size was given
_MODE = _i("mode", 0, 3)  # 0 lstm, 1 gru, 2 rnn_tanh, 3 rnn_relu

KERNELS: tuple[Kernel, ...] = (
    Kernel("gemm", "blas",
           (_a("a", IN, 2), _a("b", IN, 2), _a("c", INOUT, 2, ACC), _f("alpha"), _f("beta"),
            _b("trans_a"), _b("trans_b")),
           "c = alpha * op(a) @ op(b) + beta * c"),
    Kernel("conv2d_forward", "conv",
           (_a("x", IN, 4), _a("w", IN, 4), _a("b", OPT, 1, ACC), _a("y", OUT, 4), *_CONV),
           "x (N,C,H,W), w (K,C,R,S), b (K) -> y (N,K,P,Q); ph, pw: top/left padding"),
    Kernel("conv2d_backward_data", "conv",
           (_a("dy", IN, 4), _a("w", IN, 4), _a("dx", OUT, 4), *_CONV),
           "dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)"),
    Kernel("conv2d_backward_weight", "conv",
           (_a("dy", IN, 4), _a("x", IN, 4), _a("dw_out", OUT, 4, ACC), *_CONV),
           "dy (N,K,P,Q), x (N,C,H,W) -> dw_out (K,C,R,S)"),
    Kernel("conv2d_backward_bias", "conv", (_a("dy", IN, 4), _a("db", OUT, 1, ACC)),
           "dy (N,K,P,Q) -> db (K)"),
    Kernel("max_pool2d_forward", "pool",
           (_a("x", IN, 4), _a("y", OUT, 4), _a("indices", INDEX_OUT, 4), *_POOL),
           "x (N,C,H,W) -> y, indices (N,C,P,Q), indices flat h*W+w per plane"),
    Kernel("max_pool2d_backward", "pool",
           (_a("dy", IN, 4), _a("indices", INDEX, 4), _a("dx", OUT, 4)),
           "dy, indices (N,C,P,Q) -> dx (N,C,H,W)"),
    Kernel("avg_pool2d_forward", "pool",
           (_a("x", IN, 4), _a("y", OUT, 4), *_POOL, _b("count_include_pad")),
           "x (N,C,H,W) -> y (N,C,P,Q)"),
    Kernel("avg_pool2d_backward", "pool",
           (_a("dy", IN, 4), _a("dx", OUT, 4), *_POOL, _b("count_include_pad")),
           "dy (N,C,P,Q) -> dx (N,C,H,W)"),
    Kernel("batch_norm_forward_training", "norm",
           (_a("x", IN, 3), _a("weight", IN, 1, ACC), _a("bias", IN, 1, ACC), _a("y", OUT, 3),
            _a("mean", OUT, 1, STAT), _a("var", OUT, 1, STAT), _a("invstd", OUT, 1, STAT),
            _f("eps", 0.0)),
           "x (N,C,L) -> y (N,C,L), mean, var (biased), invstd (C)"),
    Kernel("batch_norm_forward_inference", "norm",
           (_a("x", IN, 3), _a("weight", IN, 1, ACC), _a("bias", IN, 1, ACC),
            _a("running_mean", IN, 1, ACC), _a("running_var", IN, 1, ACC), _a("y", OUT, 3),
            _f("eps", 0.0)),
           "x (N,C,L) -> y (N,C,L) with the running statistics"),
    Kernel("batch_norm_backward", "norm",
           (_a("dy", IN, 3), _a("x", IN, 3), _a("weight", IN, 1, ACC), _a("mean", IN, 1, STAT),
            _a("invstd", IN, 1, STAT), _a("dx", OUT, 3), _a("dweight", OUT, 1, ACC),
            _a("dbias", OUT, 1, ACC)),
           "dy, x (N,C,L) -> dx (N,C,L), dweight, dbias (C)"),
)

# Element-wise activations: forward x -> y, backward (dy, saved) -> dx where saved is the
# output y or the input x (the activation table in convnet.kernels.activation says which).
# kernel: (its scalar parameters, the tensor backward reads: output y or input x)
ACTIVATION_KERNELS = {
    "tanh": ((), "y"),
    "sigmoid": ((), "y"),
    "leaky_relu": ((_f("slope", example=0.1),), "x"),
    "elu": ((_f("alpha", example=1.3), _f("scale", example=1.1)), "x"),
    "gelu": ((_i("approximate", 0, 1, example=1),), "x"),  # 0: erf, 1: tanh form
}
for _kind, (_params, _saved) in ACTIVATION_KERNELS.items():
    KERNELS += (
        Kernel(f"{_kind}_forward", "activation", (_a("x", IN), _a("y", OUT), *_params),
               f"y = {_kind}(x), any shape"),
        Kernel(f"{_kind}_backward", "activation",
               (_a("dy", IN), _a(_saved, IN), _a("dx", OUT), *_params),
               f"dx for {_kind}, from dy and the saved {_saved}"),
    )

KERNELS += (
    Kernel("lstm_cell_forward", "rnn",
           (_a("gates", IN, 2), _a("bias", IN, 1), _a("c_prev", IN, 2), _a("h", OUT, 2),
            _a("c", OUT, 2), _a("act", OUT, 2)),
           "gates (B,4H), bias (4H), c_prev (B,H) -> h, c (B,H), act (B,4H) (act may be gates)",
           frozenset({("act", "gates")})),
    Kernel("lstm_cell_backward", "rnn",
           (_a("act", IN, 2), _a("c_prev", IN, 2), _a("c", IN, 2), _a("dh", IN, 2),
            _a("dc", IN, 2), _a("dgates", OUT, 2), _a("dc_prev", OUT, 2), _a("db", INOUT, 1),
            _b("accumulate")),
           "act (B,4H), c_prev, c, dh, dc (B,H) -> dgates (B,4H), dc_prev (B,H), db (4H)",
           frozenset({("dc_prev", "dc")})),
    Kernel("gru_cell_forward", "rnn",
           (_a("gx", IN, 2), _a("gh", IN, 2), _a("b_ih", IN, 1), _a("b_hh", IN, 1),
            _a("h_prev", IN, 2), _a("h", OUT, 2), _a("act", OUT, 2)),
           "gx, gh (B,3H), b_ih, b_hh (3H), h_prev (B,H) -> h (B,H), act (B,4H)"),
    Kernel("gru_cell_backward", "rnn",
           (_a("act", IN, 2), _a("h_prev", IN, 2), _a("dh", IN, 2), _a("dgx", OUT, 2),
            _a("dgh", OUT, 2), _a("dh_prev", INOUT, 2), _a("dbx", INOUT, 1),
            _a("dbh", INOUT, 1), _b("accumulate")),
           "act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev (B,H), dbx, dbh (3H)"),
    Kernel("rnn_cell_forward", "rnn",
           (_a("pre", IN, 2), _a("bias", IN, 1), _a("h", OUT, 2), _b("relu")),
           "pre (B,H), bias (H) -> h = tanh or relu of pre + bias (h may be pre)",
           frozenset({("h", "pre")})),
    Kernel("rnn_cell_backward", "rnn",
           (_a("h", IN, 2), _a("dh", IN, 2), _a("dpre", OUT, 2), _a("db", INOUT, 1),
            _b("relu"), _b("accumulate")),
           "h, dh (B,H) -> dpre (B,H), db (H)"),
    Kernel("rnn_recurrence_forward", "rnn",
           (_MODE, _a("xproj", INOUT, 3), _a("w_hh", IN, 2), _a("b_ih", IN, 1),
            _a("b_hh", IN, 1), _a("hbuf", INOUT, 3), _a("cbuf", OPT_INOUT, 3),
            _a("act", OPT_INOUT, 3), _b("reverse")),
           "xproj (T,B,G*H) consumed, w_hh (G*H,H), b_ih, b_hh (G*H), hbuf (T+1,B,H) -> "
           "states; cbuf (T+1,B,H) LSTM, act (T,B,4H) GRU"),
    Kernel("rnn_recurrence_backward", "rnn",
           (_MODE, _a("w_hh", IN, 2), _a("hbuf", IN, 3), _a("cbuf", OPT, 3), _a("act", OPT, 3),
            _a("dH", INOUT, 3), _a("dc", OPT_INOUT, 2), _a("dgx", OUT, 3), _a("dgh", OUT, 3),
            _a("dbx", OUT, 1), _a("dbh", OUT, 1), _b("reverse")),
           "dH (T+1,B,H), dc (B,H) in/out -> dgx, dgh (T,B,G*H), dbx, dbh (G*H); dgh may "
           "be dgx and dbh dbx except for the GRU",
           frozenset({("dgh", "dgx"), ("dbh", "dbx")})),
    Kernel("upsample_nearest2d_forward", "upsample",
           (_a("x", IN, 4), _a("y", OUT, 4), *_SCALES), "x (N,C,H,W) -> y (N,C,P,Q)"),
    Kernel("upsample_nearest2d_backward", "upsample",
           (_a("dy", IN, 4), _a("dx", OUT, 4), *_SCALES), "dy (N,C,P,Q) -> dx (N,C,H,W)"),
    Kernel("upsample_bilinear2d_forward", "upsample",
           (_a("x", IN, 4), _a("y", OUT, 4), _b("align_corners"), *_SCALES),
           "x (N,C,H,W) -> y (N,C,P,Q), PyTorch's coordinates"),
    Kernel("upsample_bilinear2d_backward", "upsample",
           (_a("dy", IN, 4), _a("dx", OUT, 4), _b("align_corners"), *_SCALES),
           "dy (N,C,P,Q) -> dx (N,C,H,W)"),
)

BY_NAME: dict[str, Kernel] = {k.name: k for k in KERNELS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def check_backend(name: str, module) -> None:
    """Refuse a backend module that lacks a manifest kernel (ImportError, so the registry
    reports the backend unavailable with the reason). Python backends must also take the
    manifest's arguments in order; compiled ones are checked by name (pybind11 overloads
    hide their signatures)."""
    import inspect

    missing = [k.name for k in KERNELS if not callable(getattr(module, k.name, None))]
    if missing:
        raise ImportError(f"backend {name!r} lacks the kernels {missing} of the manifest "
                          "(convnet/kernels/spec.py); rebuild it (pip install -e .)")
    for k in KERNELS:
        fn = getattr(module, k.name)
        if inspect.isfunction(fn):
            params = tuple(inspect.signature(fn).parameters)
            if params != k.arg_names:
                raise ImportError(f"backend {name!r}: {k.name}{params} differs from the "
                                  f"manifest's {k.arg_names}")


def markdown_table() -> str:
    """The kernel table of the docs: name, module, arguments (role), what it computes."""
    rows = ["| kernel | module | arguments | computes |", "|---|---|---|---|"]
    for k in KERNELS:
        args = ", ".join(f"{a.name}:{a.role}" for a in k.args)
        rows.append(f"| `{k.name}` | {k.op} | {args} | {k.doc} |")
    return "\n".join(rows)

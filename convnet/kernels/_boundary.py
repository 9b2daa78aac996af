"""The validation boundary and the dispatch point: every backend-level call crosses here.

:func:`launch` checks a call against the manifest (``spec.py``) and the kernel's rule below,
picks the backend for the arrays' device, and runs it. What is checked, once, for every
backend (native, Numba, CUDA): array types and devices, dtypes (one float dtype per call, one
of the kernel's, with the manifest's float32 statistics and accumulators of 16-bit calls;
int64 indices), ranks, C-contiguity (refused here; the array-level API copies inputs
first), writable outputs, outputs overlapping another argument (refused unless the
manifest allows the pair), scalar types and ranges (geometry ints below 2**31, so every
product the kernels form fits in 64 bits), and the rule of each kernel: shapes against
each other, output geometry, index arrays in range, upsampling scales that stay inside the
input. A call that passes cannot make a backend read or write out of bounds.
"""

from __future__ import annotations

import math
import operator

import ml_dtypes
import numpy as np

from . import _registry, spec
from ._registry import default_cpu, get, require

_F32, _F64, _INT64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
_BF16, _F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)
_SIXTEEN = (_BF16, _F16)
_DTYPES = {"float32": _F32, "float64": _F64, "bfloat16": _BF16, "float16": _F16}


def _is_cupy(a) -> bool:
    t = type(a)
    return t is not np.ndarray and t.__module__.startswith("cupy")


def _overlap(v, u) -> bool:
    """Whether two C-contiguous arrays share bytes (their extents are exact)."""
    if type(v) is np.ndarray and type(u) is np.ndarray:
        return np.may_share_memory(v, u)
    if isinstance(v, np.ndarray) or isinstance(u, np.ndarray) or not v.size or not u.size:
        return False
    return v.data.ptr < u.data.ptr + u.nbytes and u.data.ptr < v.data.ptr + v.nbytes


def _refuse(kernel, arg, what, exc=ValueError):
    raise exc(f"{arg}: {what} ({kernel})")


class _Plan:
    """What validate needs of a kernel, worked out once: its arguments by kind, where the
    dtype comes from, the dtypes it takes, and which pairs of arrays must not overlap."""

    def __init__(self, k: spec.Kernel):
        self.kernel = k
        self.names = k.arg_names
        self.first = next(i for i, a in enumerate(k.args) if a.role in (spec.IN, spec.INOUT))
        self.dtypes = tuple(_DTYPES[d] for d in k.dtypes)
        self.arrays = [(i, a, a.role in (spec.INDEX, spec.INDEX_OUT),
                        a.role in spec.WRITTEN_ROLES, a.role in (spec.OPT, spec.OPT_INOUT))
                       for i, a in enumerate(k.args) if a.role in spec.ARRAY_ROLES]
        self.scalars = [(i, a) for i, a in enumerate(k.args) if a.role not in spec.ARRAY_ROLES]
        self.pairs = [(i, a.name, j, b.name) for i, a, _, w, _ in self.arrays if w
                      for j, b, *_ in self.arrays
                      if j != i and (a.name, b.name) not in k.alias
                      and (b.name, a.name) not in k.alias]


_PLANS: dict[str, _Plan] = {}


def _check_array(name, a, v, want, on_gpu, written):
    if type(v) is not np.ndarray and not _is_cupy(v):
        if not isinstance(v, np.ndarray):
            _refuse(name, a.name, f"expected a NumPy or CuPy array, got {type(v).__name__}",
                    TypeError)
    if (type(v) is not np.ndarray and _is_cupy(v)) != on_gpu:
        _refuse(name, a.name, "arrays are on different devices (NumPy and CuPy mixed)")
    if v.dtype not in want:
        _refuse(name, a.name, f"expected dtype {' or '.join(map(str, want))}, got {v.dtype}",
                TypeError)
    if a.ndim is not None and v.ndim != a.ndim:
        _refuse(name, a.name, f"expected a {a.ndim}-D array, got shape {tuple(v.shape)}")
    flags = v.flags
    if not flags.c_contiguous:
        _refuse(name, a.name, "expected a C-contiguous array")
    if written and not flags.writeable:
        _refuse(name, a.name, "is written but the array is read-only")


def _check_scalar(name, a, v):
    t = type(v)
    if a.role == spec.BOOL:
        if t is not bool and not isinstance(v, np.bool_):
            _refuse(name, a.name, f"expected a bool, got {v!r}", TypeError)
        return bool(v)
    if a.role == spec.INT:
        if t is not int:
            if isinstance(v, (bool, np.bool_)):
                _refuse(name, a.name, f"expected an int, got {v!r}", TypeError)
            try:
                v = operator.index(v)
            except TypeError:
                _refuse(name, a.name, f"expected an int, got {v!r}", TypeError)
    else:
        if t is not float:
            try:
                v = float(v)
            except (TypeError, ValueError):
                _refuse(name, a.name, f"expected a number, got {v!r}", TypeError)
        if not math.isfinite(v):
            _refuse(name, a.name, f"must be finite, got {v}")
    if not a.lo <= v <= a.hi:
        _refuse(name, a.name, f"must be in [{a.lo}, {a.hi}], got {v}")
    return v


def _dtype_words(names) -> str:
    wide = " or ".join(d for d in names if d not in spec.SIXTEEN_BIT)
    short = ", ".join(d for d in names if d in spec.SIXTEEN_BIT)
    return f"{wide} (or {short})" if short else wide


def validate(name: str, args: tuple):
    """Check one backend-level call; returns (kernel, normalised args, on_gpu)."""
    plan = _PLANS.get(name) or _PLANS.setdefault(name, _Plan(spec.BY_NAME[name]))
    k = plan.kernel
    if len(args) != len(k.args):
        raise TypeError(f"{name}: expected {len(k.args)} arguments {k.arg_names}, got "
                        f"{len(args)}")
    first = args[plan.first]
    dtype = getattr(first, "dtype", None)
    # equality, not identity: a byte-swapped float32 is not equal to the native one (refused)
    if dtype not in plan.dtypes:
        _refuse(name, k.args[plan.first].name,
                f"expected {_dtype_words(k.dtypes)}, got dtype {dtype}", TypeError)
    stat = _F32 if dtype in _SIXTEEN else dtype
    wants = {spec.CALL: (dtype,), spec.STAT: (stat,), spec.ACC: (dtype, stat)}
    on_gpu = type(first) is not np.ndarray and _is_cupy(first)
    out = list(args)
    for i, a, index, written, optional in plan.arrays:
        v = args[i]
        if v is None:
            if not optional:
                _refuse(name, a.name, "is required, got None", TypeError)
            continue
        _check_array(name, a, v, (_INT64,) if index else wants[a.dtype], on_gpu, written)
    for i, a in plan.scalars:
        out[i] = _check_scalar(name, a, args[i])
    for i, a_name, j, b_name in plan.pairs:
        v, u = args[i], args[j]
        if v is not None and u is not None and _overlap(v, u):
            _refuse(name, a_name, f"is written but overlaps {b_name} in memory")
    _RULES[name](dict(zip(plan.names, out)))
    return k, out, on_gpu


def _pick(backend, on_gpu):
    if backend is None:
        backend = "cuda" if on_gpu else default_cpu()
    elif backend not in ("native", "numba", "cuda"):
        raise ValueError(f"backend: unknown backend {backend!r}; expected None, 'native', "
                         "'numba' or 'cuda'")
    if on_gpu and backend != "cuda":
        raise ValueError(f"backend: {backend!r} runs on NumPy arrays, but the inputs are CuPy")
    if backend == "cuda" and not on_gpu:
        raise ValueError("backend: 'cuda' needs CuPy arrays, but the inputs are NumPy arrays "
                         "(move them with cupy.asarray)")
    if backend == "numba":
        _registry.sync_numba_threads()
    return require(backend)


def launch(name: str, backend, *args):
    """Validate a backend-level call, pick its backend (None: the fastest for the arrays'
    device), run it. The single place where devices are dispatched."""
    check = _FAST.get(name) or _fast_check(name)
    kind = check(args)
    if kind == 1:  # the usual call: NumPy arrays and Python scalars, all in order
        getattr(_pick(backend, False), name)(*args)
        return
    if kind == 2:  # the same with a 16-bit dtype
        _run_16bit(_pick(backend, False), name, args)
        return
    _, args, on_gpu = validate(name, args)
    module = _pick(backend, on_gpu)
    if args[_PLANS[name].first].dtype in _SIXTEEN:
        _run_16bit(module, name, args)
    else:
        getattr(module, name)(*args)


def _address(v) -> int:
    return v.__array_interface__["data"][0] if isinstance(v, np.ndarray) else v.data.ptr


def _run_16bit(module, name, args):
    """A validated 16-bit call: the backend's own ``<kernel>_<dtype>`` when it has one, else
    float32 compute on the 16-bit storage (upcast the 16-bit inputs, run the float32
    kernel, round its results to nearest even into the 16-bit outputs). Arrays already in
    float32 (statistics, accumulators) are passed as they are. An array given for two
    arguments (the in-place pairs of the manifest) gets one float32 copy, so the kernel
    still works in place."""
    plan = _PLANS.get(name) or _PLANS.setdefault(name, _Plan(spec.BY_NAME[name]))
    args = list(args)
    fn = getattr(module, f"{name}_{args[plan.first].dtype.name}", None)
    if fn is not None:
        fn(*args)
        return
    groups: dict = {}  # (address, shape) -> [array, read, written, argument positions]
    for i, a, index, written, _ in plan.arrays:
        v = args[i]
        if v is None or index or v.dtype not in _SIXTEEN:
            continue
        g = groups.setdefault((_address(v), v.shape), [v, False, False, []])
        g[1] |= a.role != spec.OUT
        g[2] |= written
        g[3].append(i)
    if plan.kernel.alias and len(groups) > 1:  # separate copies would break in-place pairs
        spans = [(_address(g[0]), _address(g[0]) + g[0].nbytes, g[2]) for g in groups.values()]
        for j, (lo, hi, w) in enumerate(spans):
            if any(lo < h and l_ < hi and (w or w2) for l_, h, w2 in spans[j + 1:]):
                raise ValueError(f"{name}: a written array that overlaps another must be that "
                                 "same array (the in-place pairs of the kernel)")
    for v, read, _, where in groups.values():
        tmp = _widen(v) if read else (np if isinstance(v, np.ndarray) else
                                      _cupy()).empty(v.shape, _F32)
        for i in where:
            args[i] = tmp
    getattr(module, name)(*args)
    for v, _, written, where in groups.values():
        if written:
            _narrow(args[where[0]], v)


def _f16_converter():
    """The native float16 conversions (F16C, several times NumPy's scalar ones), or None."""
    native = get("native")
    return native if native is not None and hasattr(native, "widen16") else None


def _widen(v):
    """A float32 copy of a 16-bit array."""
    if v.dtype is _F16 and type(v) is np.ndarray and (conv := _f16_converter()) is not None:
        out = np.empty(v.shape, _F32)
        conv.widen16(v, out)
        return out
    return v.astype(_F32)


def _narrow(src, dst):
    """dst (16-bit) = src (float32) rounded to nearest even."""
    if dst.dtype is _F16 and type(dst) is np.ndarray and (conv := _f16_converter()) is not None:
        conv.narrow16(src, dst)
        return
    with np.errstate(over="ignore"):  # a float32 beyond the 16-bit range rounds to inf
        dst[...] = src


def _cupy():
    import cupy

    return cupy


# --------------------------------------------------------------------------- fast path
# validate() walks the plan generically, which costs more than a tiny kernel. Each kernel
# also gets a straight-line check, generated once from the same plan, that accepts only the
# common case (returning 1, or 2 for a 16-bit call): NumPy arrays of the exact dtype, rank,
# C order and writability, Python scalars in range, no overlap, and the kernel's rule.
# Anything else (CuPy, NumPy scalars, a dtype equal but not identical, every error) returns
# False and takes validate(), which converts or refuses with its message: both paths accept
# the same calls.

_FAST: dict = {}


def _fast_check(name):
    plan = _PLANS.get(name) or _PLANS.setdefault(name, _Plan(spec.BY_NAME[name]))
    k = plan.kernel
    v = [f"a{i}" for i in range(len(k.args))]
    first = v[plan.first]
    lines = ["def check(args):",
             f"    if len(args) != {len(v)}:",
             "        return False",
             f"    {', '.join(v)}, = args",
             f"    if type({first}) is not ndarray:",
             "        return False",
             f"    dt = {first}.dtype",
             "    if dt is F32 or dt is F64:",
             "        st = dt"]
    sixteen = [f"dt is {'BF16' if d == 'bfloat16' else 'F16'}" for d in k.dtypes
               if d in spec.SIXTEEN_BIT]
    if sixteen:
        lines += [f"    elif {' or '.join(sixteen)}:", "        st = F32"]
    lines += ["    else:", "        return False"]
    dtype_test = {spec.CALL: "{0}.dtype is not dt", spec.STAT: "{0}.dtype is not st",
                  spec.ACC: "({0}.dtype is not dt and {0}.dtype is not st)"}
    for i, a, index, written, optional in plan.arrays:
        conds = [f"type({v[i]}) is not ndarray",
                 f"{v[i]}.dtype is not I64" if index else dtype_test[a.dtype].format(v[i])]
        if a.ndim is not None:
            conds.append(f"{v[i]}.ndim != {a.ndim}")
        conds.append(f"not {v[i]}.flags.c_contiguous")
        if written:
            conds.append(f"not {v[i]}.flags.writeable")
        test = " or ".join(conds)
        if optional:
            test = f"{v[i]} is not None and ({test})"
        lines += [f"    if {test}:", "        return False"]
    for i, a in plan.scalars:
        if a.role == spec.BOOL:
            test = f"{v[i]} is not True and {v[i]} is not False"
        else:
            kind = "int" if a.role == spec.INT else "float"
            test = f"type({v[i]}) is not {kind}"
            if a.lo is not None:
                test += f" or not {a.lo!r} <= {v[i]}"
            if a.hi is not None:
                test += f" or not {v[i]} <= {a.hi!r}"
        lines += [f"    if {test}:", "        return False"]
    opt = {i for i, *rest in plan.arrays if rest[-1]}
    for i, _, j, _ in plan.pairs:
        test = f"may_share({v[i]}, {v[j]})"
        if i in opt or j in opt:
            test = f"{v[i]} is not None and {v[j]} is not None and {test}"
        lines += [f"    if {test}:", "        return False"]
    if k.op == "activation":  # the element-wise rule, inline: every array of one shape
        arrays = [v[i] for i, *_ in plan.arrays]
        lines += [f"    if {x}.shape != {arrays[0]}.shape:\n        return False"
                  for x in arrays[1:]]
    else:
        ns = ", ".join(f"{n!r}: {v[i]}" for i, n in enumerate(plan.names))
        lines.append(f"    rule({{{ns}}})")
    lines.append("    return 1 if st is dt else 2")
    env = {"F32": _F32, "F64": _F64, "BF16": _BF16, "F16": _F16, "I64": _INT64,
           "ndarray": np.ndarray,
           "may_share": np.may_share_memory, "rule": _RULES[name]}
    exec("\n".join(lines), env)  # noqa: S102  (source built above from the manifest only)
    _FAST[name] = env["check"]
    return env["check"]


# --------------------------------------------------------------------------- kernel rules


def _shape(ns, name, want):
    got = tuple(ns[name].shape)
    if got != tuple(want):
        raise ValueError(f"{name}: expected shape {tuple(want)}, got {got}")


def _positive(what, **sizes):
    for n, v in sizes.items():
        if v < 1:
            raise ValueError(f"{what}: {n} must be >= 1, got {v}")


def _gemm(ns):
    a, b = ns["a"], ns["b"]
    m, k = (a.shape[1], a.shape[0]) if ns["trans_a"] else a.shape
    kb, n = (b.shape[1], b.shape[0]) if ns["trans_b"] else b.shape
    if k != kb:
        raise ValueError(f"b: op(a) is {m}x{k} but op(b) is {kb}x{n}; inner dimensions must "
                         "match")
    _shape(ns, "c", (m, n))


def _conv(x, w, y, bias=None):
    def rule(ns):
        xs, ws, ys = ns[x].shape, ns[w].shape, ns[y].shape
        # one comparison for the usual good call; the detailed checks below say what is wrong
        if (ws[1] == xs[1] and ys[0] == xs[0] and ys[1] == ws[0]
                and min(xs[0], xs[1], ws[0], ws[2], ws[3], ys[2], ys[3]) >= 1
                and (not bias or ns[bias] is None or ns[bias].shape == (ws[0],))):
            return
        n, c, _, _ = ns[x].shape
        kk, _, r, s = ns[w].shape
        _shape(ns, w, (kk, c, r, s))
        _shape(ns, y, (n, kk, *ns[y].shape[2:]))
        _positive(y, N=n, C=c, K=kk, R=r, S=s, P=ns[y].shape[2], Q=ns[y].shape[3])
        if bias and ns[bias] is not None:
            _shape(ns, bias, (kk,))
    return rule


def _conv_bias(ns):
    _shape(ns, "db", (ns["dy"].shape[1],))


def _pool_geometry(x, y, ns):
    n, c, h, w = ns[x].shape
    p, q = ns[y].shape[2:]
    _shape(ns, y, (n, c, p, q))
    _positive(y, N=n, C=c, H=h, W=w, P=p, Q=q)
    if 2 * ns["ph"] > ns["kh"] or 2 * ns["pw"] > ns["kw"]:
        raise ValueError(f"padding: must be at most half the kernel, got {(ns['ph'], ns['pw'])} "
                         f"for kernel {(ns['kh'], ns['kw'])}")
    # every window must hold at least one input element (max pooling returns its position)
    if (p - 1) * ns["sh"] - ns["ph"] >= h or (q - 1) * ns["sw"] - ns["pw"] >= w:
        raise ValueError(f"{y}: an output of {p}x{q} has windows outside the {h}x{w} input")


def _max_pool_forward(ns):
    _pool_geometry("x", "y", ns)
    _shape(ns, "indices", ns["y"].shape)


def _max_pool_backward(ns):
    dy, idx, dx = ns["dy"], ns["indices"], ns["dx"]
    _shape(ns, "indices", dy.shape)
    _shape(ns, "dy", (*dx.shape[:2], *dy.shape[2:]))
    plane = dx.shape[2] * dx.shape[3]
    if idx.size:
        lo, hi = _index_range(idx)
        if lo < 0 or hi >= plane:
            raise ValueError(f"indices: values must be positions in the {dx.shape[2]}x"
                             f"{dx.shape[3]} plane, [0, {plane}), got [{lo}, {hi}]")


def _index_range(idx):
    """(min, max) of an index array: one native pass on NumPy arrays when _C is built."""
    native = get("native") if type(idx) is np.ndarray else None
    if native is not None and hasattr(native, "index_range"):
        return native.index_range(idx)
    return int(idx.min()), int(idx.max())


def _avg_pool(x, y):
    return lambda ns: _pool_geometry(x, y, ns)


def _bn(x, ys=(), per_channel=()):
    def rule(ns):
        n, c, l_ = ns[x].shape
        for y in ys:
            _shape(ns, y, (n, c, l_))
        for v in per_channel:
            _shape(ns, v, (c,))
        if n * l_ < 1:
            raise ValueError(f"{x}: shape {(n, c, l_)} has no values per channel")
    return rule


def _elementwise(*names):
    def rule(ns):
        for nm in names[1:]:
            _shape(ns, nm, ns[names[0]].shape)
    return rule


def _cell(state, wide, narrow, gates):
    """state (B, H) fixes B and H; ``wide`` arrays are (B, gates*H), ``narrow`` (B, H),
    anything else listed in gates as name -> width multiplier of H (1-D)."""
    def rule(ns):
        b, h = ns[state].shape
        _positive(state, B=b, H=h)
        for nm, mult in wide:
            _shape(ns, nm, (b, mult * h))
        for nm in narrow:
            _shape(ns, nm, (b, h))
        for nm, mult in gates:
            _shape(ns, nm, (mult * h,))
    return rule


_GATES = (4, 3, 1, 1)


def _recurrence(ns, forward):
    mode = ns["mode"]
    g = _GATES[mode]
    t1, b, h = ns["hbuf"].shape
    _positive("hbuf", T=t1 - 1, B=b, H=h)
    _shape(ns, "w_hh", (g * h, h))
    if forward:
        _shape(ns, "xproj", (t1 - 1, b, g * h))
        _shape(ns, "b_ih", (g * h,))
        _shape(ns, "b_hh", (g * h,))
        act_width = 4 * h
    else:
        _shape(ns, "dH", (t1, b, h))
        for nm in ("dgx", "dgh"):
            _shape(ns, nm, (t1 - 1, b, g * h))
        for nm in ("dbx", "dbh"):
            _shape(ns, nm, (g * h,))
        if mode == 1 and (ns["dgx"] is ns["dgh"] or ns["dbx"] is ns["dbh"]):
            raise ValueError("dgh: the GRU needs separate dgx/dgh and dbx/dbh arrays")
        act_width = 4 * h if mode == 1 else g * h
        if mode == 0:
            _need(ns, "dc", (b, h))
    if mode == 0:
        _need(ns, "cbuf", (t1, b, h))
    if mode == 1 or (mode == 0 and not forward):
        _need(ns, "act", (t1 - 1, b, act_width))


def _need(ns, name, shape):
    if ns[name] is None:
        raise ValueError(f"{name}: required for this mode")
    _shape(ns, name, shape)


def _upsample(x, y):
    def rule(ns):
        n, c, h, w = ns[x].shape
        p, q = ns[y].shape[2:]
        _shape(ns, y, (n, c, p, q))
        _positive(y, N=n, C=c, H=h, W=w, P=p, Q=q)
        for scale, n_in, n_out in ((ns["scale_h"], h, p), (ns["scale_w"], w, q)):
            # a given scale maps output d to input d / scale: the last one must stay inside
            if scale > 0 and (n_out - 1) / scale >= n_in + 1:
                raise ValueError(f"scales: a scale of {scale} maps the output size {n_out} "
                                 f"outside the input size {n_in}")
    return rule


_RULES = {
    "gemm": _gemm,
    "conv2d_forward": _conv("x", "w", "y", "b"),
    "conv2d_backward_data": _conv("dx", "w", "dy"),
    "conv2d_backward_weight": _conv("x", "dw_out", "dy"),
    "conv2d_backward_bias": _conv_bias,
    "max_pool2d_forward": _max_pool_forward,
    "max_pool2d_backward": _max_pool_backward,
    "avg_pool2d_forward": _avg_pool("x", "y"),
    "avg_pool2d_backward": _avg_pool("dx", "dy"),
    "batch_norm_forward_training": _bn("x", ("y",), ("weight", "bias", "mean", "var",
                                                     "invstd")),
    "batch_norm_forward_inference": _bn("x", ("y",), ("weight", "bias", "running_mean",
                                                      "running_var")),
    "batch_norm_backward": _bn("x", ("dy", "dx"), ("weight", "mean", "invstd", "dweight",
                                                   "dbias")),
    "lstm_cell_forward": _cell("c_prev", (("gates", 4), ("act", 4)), ("h", "c"),
                               (("bias", 4),)),
    "lstm_cell_backward": _cell("c_prev", (("act", 4), ("dgates", 4)),
                                ("c", "dh", "dc", "dc_prev"), (("db", 4),)),
    "gru_cell_forward": _cell("h_prev", (("gx", 3), ("gh", 3), ("act", 4)), ("h",),
                              (("b_ih", 3), ("b_hh", 3))),
    "gru_cell_backward": _cell("h_prev", (("act", 4), ("dgx", 3), ("dgh", 3)),
                               ("dh", "dh_prev"), (("dbx", 3), ("dbh", 3))),
    "rnn_cell_forward": _cell("pre", (), ("h",), (("bias", 1),)),
    "rnn_cell_backward": _cell("h", (), ("dh", "dpre"), (("db", 1),)),
    "rnn_recurrence_forward": lambda ns: _recurrence(ns, True),
    "rnn_recurrence_backward": lambda ns: _recurrence(ns, False),
    "upsample_nearest2d_forward": _upsample("x", "y"),
    "upsample_nearest2d_backward": _upsample("dx", "dy"),
    "upsample_bilinear2d_forward": _upsample("x", "y"),
    "upsample_bilinear2d_backward": _upsample("dx", "dy"),
}
# Element-wise kernels: every array of one shape (the manifest's activation rows).
for _k in spec.KERNELS:
    if _k.op == "activation":
        _RULES[_k.name] = _elementwise(*(a.name for a in _k.args if a.role in spec.ARRAY_ROLES))

# The rules are keyed by the manifest's names and must cover it exactly: a kernel added to
# the manifest without its rule fails at import, never silently unchecked.
if set(_RULES) != set(spec.NAMES):
    raise ImportError(f"kernel rules out of step with the manifest: missing "
                      f"{sorted(set(spec.NAMES) - set(_RULES))}, unknown "
                      f"{sorted(set(_RULES) - set(spec.NAMES))}")

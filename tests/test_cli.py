import pytest

from convnet import cli, verify


def test_info_lists_backends(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for name in ("native", "numba", "cuda", "threads", "numpy", "cpu 16-bit kernels",
                 "gpu tensor cores"):
        assert name in out


def test_info_reports_the_tensor_core_kernels_and_tf32(capsys, monkeypatch):
    import convnet as cn
    from convnet import cli as cli_module

    class Ext:  # a CUDA build with the tensor-core kernels
        gemm_tc = None

        @staticmethod
        def compiled_archs():
            return "sm_80,sm_90"

    monkeypatch.setitem(__import__("sys").modules, "convnet._cuda", Ext)
    monkeypatch.setattr(cn, "_cuda", Ext, raising=False)
    line = cli_module._tensor_core_kernels(cn)
    assert "mma.sync" in line and "sm_80,sm_90" in line and "matmul off" in line
    monkeypatch.setattr(cn.backends.cuda.matmul, "allow_tf32", True)
    assert "matmul allowed" in cli_module._tensor_core_kernels(cn)


def test_verify_passes_on_available_backends(capsys):
    assert cli.main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "all kernels agree" in out and "FAIL" not in out
    assert "conv2d_backward_weight" in out and "batch_norm_backward" in out


def test_verify_reports_a_broken_kernel(monkeypatch, capsys):
    """A kernel that returns wrong values makes verify fail, naming it."""
    from convnet.kernels import _registry

    native = _registry.get("native") or _registry.get("numba")
    name = "native" if _registry.get("native") else "numba"

    class Broken:
        def __getattr__(self, attr):
            fn = getattr(native, attr)
            if attr != "avg_pool2d_forward":
                return fn

            def wrong(x, y, *args):
                fn(x, y, *args)
                y *= 1.01

            return wrong

    monkeypatch.setitem(_registry._modules, name, Broken())
    rows, ok = verify.run([name])
    assert not ok
    bad = {r["kernel"] for r in rows if not r["ok"]}
    assert bad == {"avg_pool2d_forward"}


def test_verify_fails_on_a_missing_kernel(monkeypatch):
    """An extension built before a kernel existed is a failure, not a silent skip."""
    from convnet.kernels import _registry

    name = "native" if _registry.get("native") else "numba"
    native = _registry.get(name)

    class Old:
        def __getattr__(self, attr):
            if attr == "upsample_nearest2d_backward":
                raise AttributeError(attr)
            return getattr(native, attr)

    monkeypatch.setitem(_registry._modules, name, Old())
    rows, ok = verify.run([name])
    assert not ok
    bad = [r for r in rows if not r["ok"]]
    assert {r["kernel"] for r in bad} == {"upsample_nearest2d_backward"}
    assert "kernel missing" in bad[0]["worst_case"]
    assert "FAIL" in verify.format_rows(rows)


def test_bench_quick_table(capsys):
    pytest.importorskip("torch")
    from convnet import bench

    backend = bench.available_cpu_backends()[0]
    assert cli.main(["bench", "--only", "bn", "--quick", "--min-time", "0.01",
                     "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert "bn train fwd+bwd" in out and f"x {backend}" in out

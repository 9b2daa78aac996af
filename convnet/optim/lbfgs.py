"""L-BFGS (Nocedal 1980) with torch.optim.LBFGS's algorithm, defaults and closure
protocol: ``step(closure)`` re-evaluates the loss and gradients as often as it needs."""

from __future__ import annotations

import numpy as np

from ..autograd import enable_grad
from ._line_search import strong_wolfe
from .optimizer import Optimizer


class LBFGS(Optimizer):
    """``closure()`` must zero the gradients, compute the loss, call ``backward()`` and
    return the loss. One parameter group only (the history is over all parameters as one
    vector); ``line_search_fn`` is None (fixed steps of ``lr``) or "strong_wolfe"."""

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn: expected None or 'strong_wolfe', got "
                             f"{line_search_fn!r}")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    # ------------------------------------------------------------------ flat views
    # The history is kept in float64 on the parameters' device (NumPy or CuPy arrays).
    def _flat_grad(self):
        xp = self._params[0]._xp
        parts = []
        for p in self._params:
            g = xp.zeros(p.shape, p.dtype) if p.grad is None else p.grad._data
            parts.append(g.reshape(-1))
        return xp.concatenate(parts).astype(np.float64)

    def _flat_params(self):
        xp = self._params[0]._xp
        return xp.concatenate([p._data.reshape(-1) for p in self._params]).astype(np.float64)

    def _set_params(self, flat) -> None:
        start = 0
        for p in self._params:
            n = p.numel()
            p._data[...] = flat[start:start + n].reshape(p.shape).astype(p.dtype)
            p._vc[0] += 1  # an in-place write, as the other optimizers' steps
            start += n

    def _evaluate(self, closure) -> float:
        with enable_grad():
            return closure().item()

    # ------------------------------------------------------------------ step
    def step(self, closure):
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that re-evaluates the model")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history = group["history_size"]
        state = self.state.setdefault(id(self._params[0]), {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = orig_loss.item()
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if abs(g).max() <= tol_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        dirs, steps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag = state.get("H_diag")
        g_prev, loss_prev = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -g
                dirs, steps, ro = [], [], []
                h_diag = 1.0
            else:
                y = g - g_prev
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:  # keep the pair only when the curvature is positive
                    if len(dirs) == history:
                        dirs.pop(0)
                        steps.pop(0)
                        ro.pop(0)
                    dirs.append(y)
                    steps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                # the two-loop recursion: d = -H g
                q = -g
                al = [0.0] * len(dirs)
                for i in range(len(dirs) - 1, -1, -1):
                    al[i] = float(steps[i] @ q) * ro[i]
                    q = q - al[i] * dirs[i]
                d = q * h_diag
                for i in range(len(dirs)):
                    be = float(dirs[i] @ d) * ro[i]
                    d = d + (al[i] - be) * steps[i]
            g_prev = g.copy()
            loss_prev = loss
            t = min(1.0, 1.0 / float(abs(g).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(g @ d)
            if gtd > -tol_change:
                break

            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x0 = self._flat_params()

                def evaluate(step, x0=x0, d=d):
                    self._set_params(x0 + step * d)
                    f = self._evaluate(closure)
                    return f, self._flat_grad()

                loss, g, t, ls_evals = strong_wolfe(evaluate, t, d, loss, g, gtd,
                                                    max_ls=max_eval - evals)
                self._set_params(x0 + t * d)
                opt_cond = abs(g).max() <= tol_grad
            else:
                self._set_params(self._flat_params() + t * d)
                opt_cond = False
                if n_iter != max_iter:
                    loss = self._evaluate(closure)
                    g = self._flat_grad()
                    opt_cond = abs(g).max() <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval or opt_cond:
                break
            if abs(d * t).max() <= tol_change or abs(loss - loss_prev) < tol_change:
                break

        state.update(d=d, t=t, old_dirs=dirs, old_stps=steps, ro=ro, H_diag=h_diag,
                     prev_flat_grad=g_prev, prev_loss=loss_prev)
        return orig_loss

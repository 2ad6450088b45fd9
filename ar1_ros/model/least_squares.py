"""Regularised least squares used by the unicycle action space (spec §4.2-4.3).

Every problem here is a small dense ridge / Tikhonov system solved through its normal equations
by Cholesky, batched over leading dimensions.  All helpers compute in the dtype of their tensor
arguments; the caller chooses that dtype and disables autocast.
"""
from math import comb

import torch

# The official solver multiplies the ridge by 10 until Cholesky succeeds, without a bound; an
# indefinite matrix would spin forever, so the retries are capped here and then reported.
MAX_RIDGE_RETRIES = 12


def difference_matrix(n: int, order: int, dtype: torch.dtype,
                      device: torch.device) -> torch.Tensor:
    """Return the banded forward-difference operator of the given order.

    Row i holds the binomial stencil of x[i .. i+order] (order 2: 1 -2 1, order 3: -1 3 -3 1).

    Args:
        n: number of unknowns.
        order: difference order (>= 1).
        dtype: dtype of the matrix.
        device: device of the matrix.

    Returns:
        torch.Tensor: (max(n - order, 0), n).

    """
    rows = max(n - order, 0)
    mat = torch.zeros(rows, n, dtype=dtype, device=device)
    idx = torch.arange(rows, device=device)
    for k in range(order + 1):
        mat[idx, idx + k] = float((-1) ** (order - k) * comb(order, k))
    return mat


def smoothing_gram(n: int, order: int, lam: float, dt: float, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """Return lam / dt^(2 order) * D^T D, the normal-equation term of a derivative penalty.

    The dt scaling makes lam weigh the squared order-th *time derivative*, not the raw finite
    difference, so its meaning does not change with the sampling period.

    Args:
        n: number of unknowns.
        order: order of the penalised derivative.
        lam: penalty weight.
        dt: sampling period in seconds.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        torch.Tensor: (n, n) symmetric positive semi-definite matrix.

    """
    d = difference_matrix(n, order, dtype, device)
    return (lam / dt ** (2 * order)) * (d.transpose(-1, -2) @ d)


def cholesky_solve_ridge(gram: torch.Tensor, rhs: torch.Tensor, ridge: float) -> torch.Tensor:
    """Solve (gram + ridge I) x = rhs by Cholesky, raising the ridge x10 where it fails.

    Unlike the official code, which raises the ridge for the whole batch, only the problems whose
    factorisation failed are retried, so a result never depends on its batch neighbours.  A zero
    ridge is first raised to eps * max|diag(gram)| (the official x10 would keep it at zero).

    Args:
        gram: (..., n, n) symmetric matrix.
        rhs: (..., n) right-hand side.
        ridge: initial ridge (Tikhonov) weight.

    Returns:
        torch.Tensor: (..., n) solution.

    Raises:
        ValueError: if a system is still not positive definite after MAX_RIDGE_RETRIES retries.
            (NaN inputs are not detected by the factorisation: they give NaN results.)

    """
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    ridges = torch.full(gram.shape[:-2], float(ridge), dtype=gram.dtype, device=gram.device)
    # x10 never leaves a zero ridge (the official loop then spins forever): restart such a
    # problem from the smallest ridge its largest diagonal entry can feel (1 for a zero matrix).
    scale = gram.diagonal(dim1=-2, dim2=-1).abs().amax(dim=-1)
    floor = torch.finfo(gram.dtype).eps * torch.where(scale > 0, scale, torch.ones_like(scale))
    for _ in range(MAX_RIDGE_RETRIES + 1):
        chol, info = torch.linalg.cholesky_ex(gram + ridges[..., None, None] * eye)
        failed = info != 0
        if not bool(failed.any()):
            return torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
        raised = torch.where(ridges > 0, ridges * 10.0, floor)
        ridges = torch.where(failed, raised, ridges)
    raise ValueError(
        f'least-squares system not positive definite even with ridge {ridge} x 10^'
        f'{MAX_RIDGE_RETRIES}')


def solve_fixed_first(gram: torch.Tensor, rhs: torch.Tensor, x0: torch.Tensor,
                      ridge: float) -> torch.Tensor:
    """Minimise the quadratic of (gram, rhs) over x[1:] with x[0] = x0 held fixed.

    The quadratic is x^T gram x - 2 rhs^T x (+ ridge |x[1:]|^2); fixing x[0] moves its column
    of gram to the right-hand side.

    Args:
        gram: (..., n, n) full normal matrix, x0 included.
        rhs: (..., n) full right-hand side.
        x0: (...) the fixed first value.
        ridge: ridge on the free unknowns only.

    Returns:
        torch.Tensor: (..., n) with x0 first.

    """
    x0 = x0.unsqueeze(-1)
    free = cholesky_solve_ridge(gram[..., 1:, 1:], rhs[..., 1:] - gram[..., 1:, 0] * x0, ridge)
    return torch.cat([x0.expand(*free.shape[:-1], 1), free], dim=-1)


def trapezoid_speed_system(dxy: torch.Tensor, theta: torch.Tensor,
                           dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Build the normal equations of the trapezoid speed model for v_0 .. v_N.

    Step k gives two equations v_k u_k + v_{k+1} u_{k+1} = 2 dp_k / dt with
    u = (cos theta, sin theta).  The equations are kept in this speed scale (not multiplied by
    dt / 2) because the regularisation weights of the release were tuned against it.

    Args:
        dxy: (..., N, 2) position increments p_{k+1} - p_k.
        theta: (..., N + 1) headings.
        dt: sampling period in seconds.

    Returns:
        tuple: gram (..., N + 1, N + 1) and rhs (..., N + 1).

    """
    n = dxy.shape[-2]
    eye = torch.eye(n + 1, dtype=dxy.dtype, device=dxy.device)
    pair = eye[:-1] + eye[1:]  # (N, N + 1): step k touches v_k and v_{k+1}
    rows_cos = pair * torch.cos(theta).unsqueeze(-2)
    rows_sin = pair * torch.sin(theta).unsqueeze(-2)
    design = torch.stack([rows_cos, rows_sin], dim=-2).flatten(-3, -2)  # (..., 2N, N + 1)
    target = (2 / dt * dxy).flatten(-2)  # (..., 2N), interleaved x y like the design rows
    design_t = design.transpose(-1, -2)
    return design_t @ design, (design_t @ target.unsqueeze(-1)).squeeze(-1)


def scaled_fit(s: torch.Tensor, y: torch.Tensor, order: int, lam: float, ridge: float,
               dt: float) -> torch.Tensor:
    """Minimise sum (x_k s_k - y_k)^2 + lam / dt^(2 order) |D x|^2 + ridge |x|^2 over x.

    Args:
        s: (..., N) per-sample scale of the unknown.
        y: (..., N) observations.
        order: order of the smoothness penalty.
        lam: smoothness weight.
        ridge: ridge weight (raised x10 on Cholesky failure).
        dt: sampling period in seconds.

    Returns:
        torch.Tensor: (..., N) solution.

    """
    gram = torch.diag_embed(s * s) + smoothing_gram(y.shape[-1], order, lam, dt, y.dtype,
                                                    y.device)
    return cholesky_solve_ridge(gram, s * y, ridge)

"""Flow matching of the AR1 action expert: training pairs, loss and Euler sampler (spec §6).

Convention: t = 0 is pure noise and t = 1 is data; x_t = t x + (1 - t) eps and the velocity
target is x - eps.
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

Tensor = torch.Tensor
VelocityFn = Callable[[Tensor, Tensor], Tensor]

INT_METHODS = ('euler',)
TIMESTEP_SAMPLERS = ('beta', 'uniform')
# Beta(1.5, 1) mapped to t = 0.999 (1 - s): t never reaches 1 (clean data) and is skewed toward
# noise, where the velocity is hardest to predict.
BETA_ALPHA = 1.5
BETA_SCALE = 0.999


class FlowMatching:
    """Rectified-flow training and sampling with the official ``FlowMatching`` config names.

    ``train_ignore_guidance_rate`` and ``inference_guidance_weight`` are accepted because the
    official config carries them, and ignored: the release implements no guidance.
    """

    def __init__(self, int_method: str = 'euler', train_timestep_sampler: str = 'beta',
                 num_inference_steps: int = 10, train_ignore_guidance_rate: float = 0.1,
                 inference_guidance_weight: float = 1.0,
                 x_dims: Sequence[int] = (64, 2)):
        if int_method not in INT_METHODS:
            raise ValueError(f'unsupported int_method {int_method!r}; expected one of '
                             f'{INT_METHODS}')
        if train_timestep_sampler not in TIMESTEP_SAMPLERS:
            raise ValueError(f'unsupported train_timestep_sampler {train_timestep_sampler!r}; '
                             f'expected one of {TIMESTEP_SAMPLERS}')
        self.int_method = int_method
        self.train_timestep_sampler = train_timestep_sampler
        self.num_inference_steps = _positive_steps(num_inference_steps)
        self.x_dims = tuple(int(d) for d in x_dims)
        del train_ignore_guidance_rate, inference_guidance_weight

    def initial_noise(self, batch: int, device: Union[str, torch.device] = 'cpu',
                      generator: Optional[torch.Generator] = None) -> Tensor:
        """Draw the sampler's start point x_0 ~ N(0, I), (batch, *x_dims) float32."""
        return torch.randn(batch, *self.x_dims, device=device, dtype=torch.float32,
                           generator=generator)

    def sample_t(self, batch: int, device: Union[str, torch.device] = 'cpu',
                 generator: Optional[torch.Generator] = None,
                 beta_sample: Optional[Tensor] = None) -> Tensor:
        """Draw one training time per sample.

        Args:
            batch: number of samples B.
            device: device of the result.
            generator: optional torch.Generator for the draw.
            beta_sample: optional pre-drawn s (B,) replacing the random draw (beta sampler:
                t = 0.999 - 0.999 s; uniform sampler: t = s).

        Returns:
            torch.Tensor: t (B,) float32.

        """
        if beta_sample is not None:
            s = torch.as_tensor(beta_sample, dtype=torch.float32, device=device).reshape(batch)
        else:
            s = torch.rand(batch, generator=generator, dtype=torch.float32,
                           device=getattr(generator, 'device', device)).to(device)
            if self.train_timestep_sampler == 'beta':
                # Inverse CDF of Beta(a, 1): F(s) = s^a, so s = u^(1/a) (exact, seedable).
                s = s.pow(1.0 / BETA_ALPHA)
        if self.train_timestep_sampler == 'uniform':
            return s
        return BETA_SCALE - s * BETA_SCALE

    def construct_training_data(self, x: Tensor, noise: Optional[Tensor] = None,
                                t: Optional[Tensor] = None,
                                generator: Optional[torch.Generator] = None,
                                ) -> Tuple[Tensor, Tensor, Tensor]:
        """Build the noisy input and velocity target for clean actions x.

        Args:
            x: (B, ...) clean normalised actions.
            noise: optional eps, same shape as x (drawn N(0, I) when None).
            t: optional times (B,) or (B, 1, ..., 1) (drawn with ``sample_t`` when None).
            generator: optional torch.Generator for the draws.

        Returns:
            tuple: x_t (B, ...), t (B, 1, ..., 1) float32, target x - eps (B, ...).

        """
        batch = x.shape[0]
        if t is None:
            t = self.sample_t(batch, x.device, generator)
        t = t.reshape(batch, *([1] * (x.dim() - 1)))
        if noise is None:
            noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        return t * x + (1 - t) * noise, t, x - noise

    @staticmethod
    def loss(pred: Tensor, target: Tensor) -> Tensor:
        """Return the mean squared error between target and pred (0-d, in pred's dtype)."""
        return torch.nn.functional.mse_loss(target.to(pred.dtype), pred)

    @torch.no_grad()
    def sample(self, velocity_fn: VelocityFn, x0: Tensor, num_steps: Optional[int] = None,
               record: Optional[List[Tuple[Tensor, Tensor, Tensor]]] = None) -> Tensor:
        """Integrate dx/dt = velocity_fn(x, t) from t = 0 (x0, noise) to t = 1 with Euler.

        The grid is ``torch.linspace(0, 1, n + 1)`` in float32 and each step uses
        dt = t[i + 1] - t[i] from that grid (not exactly 1 / n), as the official sampler does,
        so results match it bit for bit.

        Args:
            velocity_fn: called as velocity_fn(x (B, ...), t (B, 1, ..., 1) float32).
            x0: (B, ...) start point.
            num_steps: number of Euler steps n (default ``num_inference_steps``).
            record: optional list receiving (x_i, t_i, v_i) for every step i.

        Returns:
            torch.Tensor: x_n (B, ...).

        """
        steps = self.num_inference_steps if num_steps is None else _positive_steps(num_steps)
        grid = torch.linspace(0.0, 1.0, steps + 1, device=x0.device, dtype=torch.float32)
        shape = (x0.shape[0],) + (1,) * (x0.dim() - 1)
        x = x0
        for i in range(steps):
            t_i = grid[i].expand(shape)
            dt = (grid[i + 1] - grid[i]).expand(shape)
            v = velocity_fn(x, t_i)
            if record is not None:
                record.append((x, t_i, v))
            x = x + dt * v
        return x


def _positive_steps(n: int) -> int:
    """Return n as int, or raise ValueError if it is not a positive step count."""
    if int(n) != n or n < 1:
        raise ValueError(f'number of Euler steps must be a positive integer, got {n!r}')
    return int(n)

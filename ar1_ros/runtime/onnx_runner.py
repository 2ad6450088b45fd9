"""Run AR1's exported ONNX parts (see ar1_ros.model.onnx_expert / onnx_vision) with onnxruntime.

`OnnxExpertStep` is one flow-matching velocity evaluation on a stacked prefix KV cache;
`onnx_velocity_fn` adapts it to `FlowMatching.sample`, so the 10 Euler steps can run on the
ONNX file. `OnnxVision` encodes images of the grid the file was exported for. Inputs may be
numpy arrays or torch tensors; they are cast to the dtypes the file declares.
"""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort
import torch

from ar1_ros.model.onnx_expert import check_step_shapes

ArrayLike = Union[np.ndarray, torch.Tensor]
# onnxruntime's type strings -> numpy dtypes, for the types our exports use.
_NUMPY_TYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16,
                'tensor(int64)': np.int64}


def default_providers() -> List[str]:
    """Return ['CUDAExecutionProvider', 'CPUExecutionProvider'] if CUDA is built in, else CPU."""
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


def to_numpy(value: ArrayLike) -> np.ndarray:
    """Return a torch tensor (any device; bfloat16 widened to float32) or array as numpy."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return np.asarray(value)


def max_abs_error(expected: ArrayLike, actual: ArrayLike) -> float:
    """Return max |expected - actual| in float64 (shapes must match)."""
    a, b = to_numpy(expected).astype(np.float64), to_numpy(actual).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f'shape mismatch: {a.shape} vs {b.shape}')
    return float(np.abs(a - b).max()) if a.size else 0.0


class OnnxPart:
    """An onnxruntime session on one exported file, with its signature and metadata."""

    def __init__(self, path: Union[str, Path], providers: Optional[Sequence[str]] = None):
        """Open `path` with `providers` (default: `default_providers()`).

        Raises FileNotFoundError if the file is missing.
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f'ONNX file {self.path} not found')
        self.session = ort.InferenceSession(str(self.path),
                                            providers=list(providers or default_providers()))
        self.metadata: Dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._types = {i.name: _NUMPY_TYPES.get(i.type) for i in self.session.get_inputs()}

    @property
    def providers(self) -> List[str]:
        """The execution providers the session actually uses, in priority order."""
        return self.session.get_providers()

    def signature(self) -> Dict[str, Dict[str, Dict[str, object]]]:
        """Return {'inputs'|'outputs': {name: {'shape': [int|str], 'dtype': str}}}."""
        def describe(args):
            return {a.name: {'shape': list(a.shape), 'dtype': np.dtype(_NUMPY_TYPES[a.type]).name}
                    for a in args}
        return {'inputs': describe(self.session.get_inputs()),
                'outputs': describe(self.session.get_outputs())}

    def run(self, feeds: Dict[str, ArrayLike]) -> List[np.ndarray]:
        """Run the session on named inputs, cast to the declared dtypes; return the outputs."""
        arrays = {}
        for name, value in feeds.items():
            array = to_numpy(value)
            wanted = self._types.get(name)
            arrays[name] = np.ascontiguousarray(array, dtype=wanted or array.dtype)
        return self.session.run(None, arrays)


class OnnxExpertStep(OnnxPart):
    """expert.onnx: velocity (B, 64, 2) = expert(x, t | prefix K/V, positions, mask)."""

    def __call__(self, x: ArrayLike, t: ArrayLike, keys: ArrayLike, values: ArrayLike,
                 position_ids: ArrayLike, mask: ArrayLike) -> np.ndarray:
        """Return the velocity (B, 64, 2) float32.

        Args:
            x: (B, 64, 2) noisy actions; t: (B, 1, 1) flow times.
            keys, values: (L, B, KVH, P, D) the backbone's prefix cache, stacked over layers.
            position_ids: (3, B, 64) int64; mask: (B, 1, 64, P + 64) additive.

        Returns:
            np.ndarray: (B, 64, 2) float32.

        """
        check_step_shapes(x.shape, keys.shape, values.shape, mask.shape)
        feeds = {'x': x, 't': t, 'past_keys': keys, 'past_values': values,
                 'position_ids': position_ids, 'mask': mask}
        return self.run(feeds)[0].astype(np.float32, copy=False)


def onnx_velocity_fn(step: OnnxExpertStep, keys: ArrayLike, values: ArrayLike,
                     position_ids: ArrayLike, mask: ArrayLike
                     ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Adapt `step` to `FlowMatching.sample(velocity_fn, x0)`: velocity_fn(x, t) -> torch.

    The prefix, positions and mask are converted to numpy once, not at every Euler step.
    """
    prefix = [to_numpy(a) for a in (keys, values, position_ids, mask)]

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(step(x, t, *prefix)).to(x.device)

    return velocity


class OnnxVision(OnnxPart):
    """vision.onnx: patches of N images of the exported grid -> image embeds + deepstack."""

    @property
    def grid_thw(self) -> Tuple[int, int, int]:
        """The per-image patch grid (t, h, w) the file was exported for."""
        return tuple(int(v) for v in self.metadata['ar1.grid_thw'].split(','))

    def __call__(self, pixel_values: ArrayLike,
                 image_grid_thw: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
        """Encode images.

        Args:
            pixel_values: (N * t * h * w, C * T * p * p) float patches.
            image_grid_thw: (N, 3) int; every row must equal `grid_thw`.

        Returns:
            tuple: image_embeds (N * t * h * w / 4, out_hidden) and deepstack_features
            (K, N * t * h * w / 4, out_hidden), float32 or the file's dtype.

        """
        grid = to_numpy(image_grid_thw).reshape(-1, 3)
        if not (grid == np.asarray(self.grid_thw)).all():
            raise ValueError(f'{self.path.name} was exported for images of grid {self.grid_thw};'
                             f' got grids {sorted(set(map(tuple, grid.tolist())))}: export '
                             'again with --image-size of these cameras')
        if pixel_values.shape[0] != len(grid) * int(np.prod(self.grid_thw)):
            raise ValueError(f'pixel_values has {pixel_values.shape[0]} rows, {len(grid)} '
                             f'images of grid {self.grid_thw} need '
                             f'{len(grid) * int(np.prod(self.grid_thw))}')
        embeds, deepstack = self.run({'pixel_values': pixel_values})
        return embeds, deepstack

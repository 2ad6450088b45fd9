"""The policy node's ROS parameters: declared with descriptions, read into validated configs.

Every parameter lives in one table below (name, default, description), so `ros2 param describe`
shows the same text as config/ar1.yaml's comments. Selection and validator parameters mirror the
fields of ar1_ros.runtime.config one to one; cameras are declared per id listed in `cameras`.
"""
import dataclasses
import functools
from typing import Any, Dict, List, Tuple

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.parameter import Parameter

from ar1_ros.runtime.backends.base import BackendSettings
from ar1_ros.runtime.cameras import CameraSpec
from ar1_ros.runtime.config import RuntimeConfig, SelectionConfig, ValidatorConfig

# (name, default, description). A default of a Parameter.Type means "no default value".
NODE_PARAMETERS: Tuple[Tuple[str, Any, str], ...] = (
    ('cameras', Parameter.Type.STRING_ARRAY,
     'Ids of the camera inputs; each id has camera.<id>.{topic,compressed,ar1_name,...}.'),
    ('ego_topic', '/localization/kinematic_state', 'nav_msgs/Odometry of the ego vehicle.'),
    ('cycle_rate_hz', 10.0,
     'Highest rate of inference cycles [Hz]; t0 advances by at least 0.9 / rate per cycle.'),
    ('cycle_trigger', 'inputs',
     "'inputs': a cycle starts as soon as a message completes a new t0; 'timer': at "
     'cycle_rate_hz ticks only (adds up to one period of latency).'),
    ('decode_threads', 4, 'Threads decoding selected camera frames ahead of inference.'),
    ('diagnostics_rate_hz', 1.0, 'Rate of /diagnostics publication [Hz].'),
    ('image_qos_depth', 5, 'Queue depth of the camera subscriptions (sensor-data QoS).'),
    ('ego_qos_depth', 50, 'Queue depth of the odometry subscription (sensor-data QoS).'),
    ('output.frame_id', 'base_link', 'Ego frame at t0 in which plans are published.'),
    ('output.odom_copy', False,
     'Also publish the plan re-expressed in the odometry frame, using the t0 pose.'),
    ('output.overlay', False, 'Publish the front camera image with the plan and reasoning drawn.'),
    ('output.overlay_camera', 'camera_front_wide_120fov',
     'AR1 name of the calibrated camera used for the overlay image.'),
    ('output.marker_line_width', 0.4, 'Width of the planned path line in RViz [m].'),
    ('output.marker_z_offset', 0.3, 'Height of path markers above the ground plane [m].'),
    ('output.text_width', 56, 'Characters per line of the reasoning text marker.'),
    ('output.text_lines', 8, 'Maximum number of reasoning text lines in RViz.'),
    ('output.max_result_age_s', 3.0,
     'A result whose t0 is older than this when inference ends is dropped as stale [s].'),
    ('backend.kind', 'torch', "'torch' (AR1Model) or 'fake' (a deterministic test double)."),
    ('backend.checkpoint', '', 'Folder of the AR1 checkpoint (config.json + safetensors).'),
    ('backend.vlm_path', '', 'Folder of the backbone VLM (tokenizer, processor); empty = auto.'),
    ('backend.device', 'cpu', "Torch device: 'cpu', 'cuda' or 'cuda:N'."),
    ('backend.dtype', 'float32',
     "'float32', 'bfloat16', 'float16' or 'fp8' (bfloat16, language model linear layers in "
     'float8 via torchao; CUDA compute capability >= 8.9 only).'),
    ('backend.num_samples', 1, 'Trajectories sampled per cycle; the first valid is the plan.'),
    ('backend.num_flow_steps', 0, 'Flow-matching Euler steps; 0 = the checkpoint default.'),
    ('backend.max_reasoning_tokens', 256, 'Maximum Chain-of-Causation tokens per cycle.'),
    ('backend.expert_engine', 'torch',
     "Expert flow steps: 'torch', 'compiled' (torch.compile), 'onnx' or 'tensorrt'."),
    ('backend.expert_file', '',
     'Exported expert (expert.onnx / expert.engine); empty = <checkpoint>/onnx/.'),
    ('backend.compile_decode', False,
     'Decode the reasoning on a static KV cache under torch.compile (CUDA graphs on GPUs).'),
    ('backend.preprocess_device', 'model',
     "Where images are resized and normalised: 'model' (the backend device; on a GPU within 1 "
     "grey level of the official CPU pipeline at 1080p) or 'cpu' (bit for bit the official)."),
    ('backend.reasoning', True,
     'Write the Chain-of-Causation; false = trajectory only (trajectory-only prompt, no decode).'),
    ('backend.greedy', False, 'Greedy decoding of the reasoning instead of nucleus sampling.'),
    ('backend.temperature', 0.6, 'Sampling temperature of the reasoning.'),
    ('backend.top_p', 0.98, 'Nucleus (top-p) threshold of the reasoning.'),
    ('backend.seed', 0, 'Seed; with t0 it fixes the sampled noise, so replays are repeatable.'),
    ('backend.fake_mode', 'nominal',
     "Test double only: 'nominal', 'raise', 'nan' or 'swerve' (fault injection)."),
    ('backend.fake_delay_s', 0.0, 'Test double only: seconds each inference sleeps.'),
)

CAMERA_PARAMETERS: Tuple[Tuple[str, Any, str], ...] = (
    ('topic', '', 'Image or CompressedImage topic of this camera.'),
    ('compressed', True, 'true: sensor_msgs/CompressedImage (JPEG/PNG); false: Image.'),
    ('ar1_name', '', 'AR1 camera name, e.g. camera_front_wide_120fov.'),
    ('intrinsics', Parameter.Type.DOUBLE_ARRAY, '[fx, fy, cx, cy] in pixels; empty = unknown.'),
    ('extrinsics', Parameter.Type.DOUBLE_ARRAY,
     '[x, y, z, roll, pitch, yaw] of the camera in the ego frame [m, rad]; empty = unknown.'),
)

SELECTION_HELP = {
    'frame_offsets_s': 'Camera grid relative to t0, oldest first [s].',
    'frame_tolerance_s': 'A frame counts for a grid time within this distance [s].',
    'missing_camera_policy': "'skip' the cycle, 'repeat' a near frame, or 'black' images.",
    'fill_max_offset_s': "How far 'repeat' may look for a frame [s].",
    'buffer_s': 'History kept per input [s] (2 s of context plus a margin).',
    'history_steps': 'Ego poses in the history (AR1: 16).',
    'history_dt_s': 'Step of the ego history grid [s] (AR1: 0.1).',
    'max_ego_gap_s': 'Longest odometry gap interpolation may bridge [s].',
    'max_speed_mismatch_mps': 'Allowed |implied speed - odometry speed| [m/s].',
    'max_speed_mismatch_ratio': 'Allowed speed mismatch as a fraction of the speed.',
    'max_input_age_s': 'Skip cycles whose t0 is older than this against the clock [s].',
    'clock_jump_back_s': 'A backwards clock step larger than this clears the buffers [s].',
}


class ConfigError(ValueError):
    """A parameter is missing, of the wrong type or out of range; the message names it."""


@dataclasses.dataclass(frozen=True)
class CameraInput:
    """One camera subscription: its parameter id, topic, transport and AR1 spec."""

    id: str
    topic: str
    compressed: bool
    spec: CameraSpec


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Everything the node reads from its parameters, validated."""

    runtime: RuntimeConfig
    backend: BackendSettings
    inputs: Tuple[CameraInput, ...]
    values: Dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        """Return the value of the node parameter `name` (e.g. 'output.frame_id')."""
        return self.values[name]


def _declare(node, name: str, default: Any, description: str) -> Any:
    descriptor = ParameterDescriptor(description=description)
    if not node.has_parameter(name):
        try:
            node.declare_parameter(name, default, descriptor)
        except ParameterException as exc:
            raise ConfigError(f'parameter {name}: {exc}') from exc
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None  # an optional parameter without a default, not set


def _dataclass_table(cls, prefix: str, help_text: Dict[str, str]) -> List[Tuple[str, Any, str]]:
    table = []
    for field in dataclasses.fields(cls):
        default = field.default
        if isinstance(default, tuple):
            default = [float(v) for v in default]
        table.append((f'{prefix}.{field.name}', default,
                      help_text.get(field.name, f'Safety gate bound {field.name}.')))
    return table


def parameter_table() -> List[Tuple[str, Any, str]]:
    """Return (name, default, description) of every node parameter except the per-camera ones."""
    return (list(NODE_PARAMETERS) + _dataclass_table(SelectionConfig, 'selection', SELECTION_HELP)
            + _dataclass_table(ValidatorConfig, 'validator', {}))


def declare_parameters(node) -> Dict[str, Any]:
    """Declare every node parameter on `node`; return name -> value (ConfigError on a bad one)."""
    values = {name: _declare(node, name, default, text)
              for name, default, text in parameter_table()}
    for camera_id in values['cameras'] or []:
        for key, default, text in CAMERA_PARAMETERS:
            name = f'camera.{camera_id}.{key}'
            values[name] = _declare(node, name, default, text)
    return values


def _camera_value(values: Dict[str, Any], camera_id: str, key: str) -> Any:
    return values[f'camera.{camera_id}.{key}']


def _camera_inputs(values: Dict[str, Any]) -> Tuple[CameraInput, ...]:
    ids = values['cameras'] or []
    if not ids:
        raise ConfigError('parameter cameras is empty: list at least one camera id')
    inputs = []
    for camera_id in ids:
        get = functools.partial(_camera_value, values, camera_id)
        if not get('topic'):
            raise ConfigError(f'camera.{camera_id}.topic is empty')
        intrinsics, extrinsics = get('intrinsics'), get('extrinsics')
        if intrinsics is not None and len(intrinsics) not in (0, 4):
            raise ConfigError(f'camera.{camera_id}.intrinsics needs 4 values [fx, fy, cx, cy]')
        if extrinsics is not None and len(extrinsics) not in (0, 6):
            raise ConfigError(f'camera.{camera_id}.extrinsics needs 6 values [x y z r p y]')
        spec = CameraSpec(get('ar1_name') or camera_id,
                          tuple(intrinsics) if intrinsics else None,
                          tuple(extrinsics) if extrinsics else None)
        inputs.append(CameraInput(camera_id, get('topic'), bool(get('compressed')), spec))
    return tuple(inputs)


def _section(values: Dict[str, Any], cls, prefix: str):
    kwargs = {}
    for field in dataclasses.fields(cls):
        value = values[f'{prefix}.{field.name}']
        kwargs[field.name] = tuple(value) if isinstance(field.default, tuple) else value
    return cls(**kwargs)


def build_config(values: Dict[str, Any]) -> NodeConfig:
    """Validate declared parameter values into a NodeConfig; raise ConfigError naming the fault."""
    try:
        inputs = _camera_inputs(values)
        runtime = RuntimeConfig(tuple(i.spec for i in inputs),
                                _section(values, SelectionConfig, 'selection'),
                                _section(values, ValidatorConfig, 'validator'))
        backend = BackendSettings(**{f.name: values[f'backend.{f.name}']
                                     for f in dataclasses.fields(BackendSettings)})
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc
    for name in ('cycle_rate_hz', 'diagnostics_rate_hz', 'output.max_result_age_s'):
        if not values[name] > 0:
            raise ConfigError(f'parameter {name} must be > 0, got {values[name]}')
    if values['cycle_trigger'] not in ('inputs', 'timer'):
        raise ConfigError(f"parameter cycle_trigger must be 'inputs' or 'timer', got "
                          f"{values['cycle_trigger']!r}")
    if values['decode_threads'] < 0:
        raise ConfigError(f"parameter decode_threads must be >= 0, got {values['decode_threads']}")
    for name in ('image_qos_depth', 'ego_qos_depth', 'output.text_width', 'output.text_lines'):
        if values[name] < 1:
            raise ConfigError(f'parameter {name} must be >= 1, got {values[name]}')
    if values['output.overlay']:
        _check_overlay_camera(runtime, values['output.overlay_camera'])
    return NodeConfig(runtime, backend, inputs, dict(values))


def _check_overlay_camera(runtime: RuntimeConfig, name: str) -> None:
    try:
        spec = runtime.camera(name)
    except KeyError:
        raise ConfigError(f'output.overlay_camera {name!r} is not one of the cameras '
                          f'{list(runtime.camera_names)}') from None
    if not spec.calibrated:
        raise ConfigError(f'output.overlay needs intrinsics and extrinsics for camera {name}')

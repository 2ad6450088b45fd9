"""The work of `ar1 closed-loop`: rig, model and runtime set up, cases run, outputs written."""
import dataclasses
import datetime
import os
from pathlib import Path
import platform
import sys
from typing import Dict, List, Optional, Sequence

from ar1_ros.cli.eval import default_params, overrides
from ar1_ros.evaluation.closed_loop import EpisodeSettings
from ar1_ros.evaluation.closed_loop_report import markdown_table, summaries, write_outputs
from ar1_ros.evaluation.closed_loop_suite import CaseResult, ModelSetup, Suite, SuiteSettings
from ar1_ros.runtime.backends.base import create_backend
from ar1_ros.runtime.worker import InferenceWorker
from ar1_ros.sim.record import RecordSettings
from ar1_ros.sim.rig import default_rig, load_rig
from ar1_ros.sim.scenarios import make_world


class SetupError(RuntimeError):
    """The rig, the parameters or the model cannot be loaded; the message says why."""


def _rig(path: Optional[Path]):
    try:
        return tuple(load_rig(path) if path else default_rig())
    except (OSError, ValueError) as exc:
        raise SetupError(f'rig: {exc}') from exc


def _model(args, rig) -> tuple:
    """Return (ModelSetup, backend, backend settings) for the model policy."""
    # Imported here: the parameter file is read through rclpy's types; baselines need no ROS.
    from ar1_ros.nodes.params import ConfigError
    from ar1_ros.nodes.params_file import load_config
    try:
        config = load_config(args.params or default_params(), overrides(args))
    except ConfigError as exc:
        raise SetupError(f'parameters: {exc}') from exc
    settings = config.backend
    if settings.kind == 'torch':
        if not settings.checkpoint:
            raise SetupError('no checkpoint: pass --checkpoint DIR (or --baselines-only)')
        if not Path(settings.checkpoint).is_dir():
            raise SetupError(f'checkpoint {settings.checkpoint}: no such folder '
                             '(pass --checkpoint DIR or --baselines-only)')
    try:
        # The sim's cameras are the rig's; selection and the safety gate are the node's.
        runtime = dataclasses.replace(config.runtime,
                                      cameras=tuple(camera.spec() for camera in rig))
    except ValueError as exc:
        raise SetupError(f'rig cameras: {exc}') from exc
    try:
        backend = create_backend(settings)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported in one line
        raise SetupError(f'model load failed: {type(exc).__name__}: {exc}') from exc
    worker = InferenceWorker(backend, runtime.validator, on_result=lambda result: None)
    return ModelSetup(runtime, worker), backend, settings


class Session:
    """One `ar1 closed-loop` run: the suite, its cases so far, and what failed."""

    def __init__(self, args, scenarios: Sequence[str], seeds: Sequence[int],
                 policies: Sequence[str]):
        self.args, self.policies = args, tuple(policies)
        self.rig = _rig(args.rig)
        self.backend = self.backend_settings = None
        model = None
        if 'model' in self.policies:
            model, self.backend, self.backend_settings = _model(args, self.rig)
        self.settings = SuiteSettings(
            tuple(scenarios), tuple(seeds), tuple(p for p in self.policies if p != 'expert'),
            EpisodeSettings(replan_s=args.replan_s), args.max_time, RecordSettings(),
            open_loop=not args.no_open_loop)
        self.suite = Suite(self.settings, self.rig, make_world, model)
        self.cases: List[CaseResult] = []
        self.case_errors: List[str] = []

    def run_all(self, on_episode=None) -> None:
        """Run every case; a case that cannot run at all is reported and the next one runs."""
        for scenario, seed in self.suite.cases():
            try:
                self.cases.append(self.suite.run_case(scenario, seed, on_episode))
            except Exception as exc:  # noqa: BLE001 - one broken case must not stop the rest
                message = f'{scenario} seed {seed}: {type(exc).__name__}: {exc}'
                print(f'ar1 closed-loop: {message}', file=sys.stderr)
                self.case_errors.append(message)

    @property
    def failed(self) -> List[str]:
        """Every failure: cases that did not run, episodes that ended in an error."""
        episodes = [f'{c.scenario} seed {c.seed} {p}: {c.metrics[p]["error"]}'
                    for c in self.cases for p in c.failed if p in self.policies]
        return self.case_errors + episodes

    def close(self) -> None:
        """Release the model."""
        if self.backend is not None:
            self.backend.close()

    def meta(self, wall_s: float) -> Dict[str, str]:
        """Return the settings, model and machine shown in the report and saved in the JSON."""
        s, b = self.settings, self.backend_settings
        camera = self.rig[0]
        meta = {'scenarios': ', '.join(s.scenarios), 'seeds': ', '.join(map(str, s.seeds)),
                'policies': ', '.join(self.policies),
                'replan_s': f'{s.episode.replan_s:g}', 'warmup_s': f'{s.episode.warmup_s:g}',
                'max_time_s': 'episode end' if s.max_time_s is None else f'{s.max_time_s:g}',
                'open_loop': str(s.open_loop),
                'rig': f'{len(self.rig)} cameras, {camera.width}x{camera.height} px '
                       f'({", ".join(c.camera_id for c in self.rig)})',
                'machine': f'{platform.node()}: {platform.platform()}, {os.cpu_count()} CPUs, '
                           f'Python {platform.python_version()}',
                'date': datetime.datetime.now().isoformat(timespec='seconds'),
                'wall_s': f'{wall_s:.1f}'}
        if self.backend is not None:
            meta.update({'checkpoint': b.checkpoint or '(none)', 'model': self.backend.model_id,
                         'backend': self.backend.name, 'device': b.device, 'dtype': b.dtype,
                         'samples': str(b.num_samples), 'sampling_seed': str(b.seed)})
        return meta

    def write(self, wall_s: float) -> Dict[str, Path]:
        """Write the outputs of the cases that ran; return their paths."""
        meta = dict(self.meta(wall_s), failures='; '.join(self.failed) or 'none')
        return write_outputs(self.args.out, self.cases, self.policies, meta)

    def summary_lines(self, paths: Dict[str, Path]) -> List[str]:
        """Return what is printed at the end: the aggregate table, failures, output paths."""
        lines = [f'{len(self.cases)} cases x {len(self.policies)} policies '
                 f'({", ".join(self.policies)})', '']
        lines += markdown_table(summaries(self.cases, self.policies)['aggregate'])
        lines += ['', *(f'FAILED: {f}' for f in self.failed)]
        return lines + [f'{name}: {path}' for name, path in paths.items()]

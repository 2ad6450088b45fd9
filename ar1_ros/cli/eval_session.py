"""The work of `ar1 eval`: configuration, model, one evaluation per bag, outputs."""
import dataclasses
import datetime
from pathlib import Path
import sys
from typing import Dict, List

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.data.stream import CameraTopic, TopicMap
from ar1_ros.evaluation.metrics import aggregate
from ar1_ros.evaluation.offline import BagEvaluation, BagSummary, EvalSettings
from ar1_ros.evaluation.records import KeyframeRecord
from ar1_ros.evaluation.report import write_report
from ar1_ros.evaluation.results import write_metrics
from ar1_ros.nodes.bag_outputs import BagOutputSink
from ar1_ros.nodes.params import ConfigError
from ar1_ros.nodes.params_file import load_config
from ar1_ros.runtime.backends.base import create_backend
from ar1_ros.runtime.worker import InferenceWorker


class SetupError(RuntimeError):
    """The configuration or the model cannot be loaded; the message says why."""


def topic_map(config) -> TopicMap:
    """Return the node configuration's input topics as a data.stream.TopicMap."""
    return TopicMap(tuple(CameraTopic(i.topic, i.spec.name, i.compressed) for i in config.inputs),
                    config['ego_topic'])


class EvalSession:
    """One `ar1 eval` run: a loaded backend evaluating bags one after another."""

    def __init__(self, args, params: Path, overrides: Dict):
        self.args = args
        try:
            self.config = load_config(params, overrides)
        except ConfigError as exc:
            raise SetupError(f'parameters: {exc}') from exc
        backend = self.config.backend
        if backend.kind == 'torch' and not backend.checkpoint:
            raise SetupError('no checkpoint: pass --checkpoint DIR')
        try:
            self.backend = create_backend(backend)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported in one line
            raise SetupError(f'model load failed: {type(exc).__name__}: {exc}') from exc
        self.worker = InferenceWorker(self.backend, self.config.runtime.validator,
                                      on_result=lambda result: None)
        self.topics = topic_map(self.config)
        self.settings = EvalSettings(every_s=args.every, keyframes=args.keyframes,
                                     uniform_s=args.uniform, max_keyframes=args.max_keyframes,
                                     camera=self.config['output.overlay_camera'])
        self.records: List[KeyframeRecord] = []
        self.summaries: List[BagSummary] = []
        self.failed_bags: List[str] = []
        args.out.mkdir(parents=True, exist_ok=True)

    def evaluate(self, path: Path) -> None:
        """Evaluate one bag; a fault is reported and what was computed before it is kept."""
        name = path.name
        try:
            with BagReader(path) as reader:
                self._evaluate(reader, name)
        except BagError as exc:
            self._bag_failed(BagSummary(name, str(path), error=str(exc)))

    def _evaluate(self, reader: BagReader, name: str) -> None:
        sink = None
        if not self.args.no_bag:
            sink = BagOutputSink(self.args.out / 'bags' / name, self.config,
                                 self.backend.model_id, self.args.storage, overwrite=True)
        try:
            total = sum(reader.message_count(t) for t in self.topics.topics)
            with _progress(total, name, self.args.no_progress) as bar:
                evaluation = BagEvaluation(reader, name, self.topics, self.config.runtime,
                                           self.worker, self.settings, sink,
                                           lambda n, done: _advance(bar, n, done))
                self.records.extend(evaluation.run())
        finally:
            if sink is not None:
                sink.close()
        if evaluation.summary.error:
            self._bag_failed(evaluation.summary)
        else:
            self.summaries.append(evaluation.summary)

    def _bag_failed(self, summary: BagSummary) -> None:
        print(f'ar1 eval: {summary.error}', file=sys.stderr)
        self.summaries.append(summary)
        self.failed_bags.append(summary.bag)

    def close(self) -> None:
        """Release the model."""
        self.backend.close()

    def write_outputs(self, wall_s: float) -> Dict[str, Path]:
        """Write metrics.json, metrics.csv and report.html; return their paths."""
        summary = aggregate(self.records)
        summary['bags'] = [dataclasses.asdict(s) for s in self.summaries]
        summary['wall_s'] = wall_s
        json_path, csv_path = write_metrics(self.args.out, self.records, summary)
        meta = {'bags': ', '.join(str(b) for b in self.args.bags),
                'model': self.backend.model_id, 'backend': self.backend.name,
                'samples': str(self.config.backend.num_samples),
                'keyframes': ('decision moments' if self.args.keyframes
                              else f'every {self.args.every:g} s'),
                'date': datetime.datetime.now().isoformat(timespec='seconds')}
        report = write_report(self.args.out, self.records, summary, meta)
        return {'metrics': json_path, 'csv': csv_path, 'report': report}

    def report_lines(self, paths: Dict[str, Path]) -> List[str]:
        """Return the lines printed at the end: per bag and overall results, output paths."""
        lines = []
        for s in self.summaries:
            state = f'FAILED ({s.error})' if s.error else 'ok'
            lines.append(f'{s.bag}: {s.messages} messages in {s.wall_s:.1f} s '
                         f'({s.duration_s:.1f} s of recording), {state}')
        ok = [r for r in self.records if r.metrics.get('min_ade') is not None]
        lines.append(f'{len(self.records)} keyframes, {len(ok)} with ground truth')
        if ok:
            mean = sum(r.metrics['min_ade'] for r in ok) / len(ok)
            lines.append(f'minADE {mean:.3f} m (mean over keyframes with ground truth)')
        if not self.args.no_bag:
            lines.append(f'output bags: {self.args.out / "bags"}')
        lines += [f'{key}: {path}' for key, path in paths.items()]
        return lines


def _progress(total: int, name: str, disabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=name, unit='msg', disable=disabled, leave=False,
                dynamic_ncols=True)


def _advance(bar, n: int, done: int) -> None:
    bar.update(n)
    if bar.n % 200 == 0:
        bar.set_postfix(keyframes=done, refresh=False)

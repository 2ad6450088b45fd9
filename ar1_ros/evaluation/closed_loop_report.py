"""The closed-loop report: closed_loop.json, report.md and plots/ in the output folder.

closed_loop.json holds every number: meta (machine, checkpoint, settings), the aggregate per
policy, the aggregate per scenario and policy, and per episode its metrics with the open-loop
keyframe scores. report.md shows the same as tables, links the plots (a bird's-eye view per
scenario and seed, bars of the aggregate) and says what each metric means.
"""
import dataclasses
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

from ar1_ros.evaluation.closed_loop_metrics import aggregate, aggregate_by_scenario
from ar1_ros.evaluation.closed_loop_plots import bev_png, summary_png
from ar1_ros.evaluation.closed_loop_suite import CaseResult

JSON_NAME = 'closed_loop.json'
REPORT_NAME = 'report.md'
# (key, header, kind) of the policy table columns; kind picks the formatting.
COLUMNS = (('episodes', 'episodes', 'count'), ('failed', 'failed', 'count'),
           ('collision_rate', 'collision', 'percent'), ('off_road_rate', 'off-road', 'percent'),
           ('progress_m', 'progress [m]', 'number'), ('progress_rel', 'vs expert', 'ratio'),
           ('comfort_rate', 'comfortable', 'percent'),
           ('max_abs_jerk', 'max jerk [m/s³]', 'number'),
           ('max_abs_lat_accel', 'max lat. acc. [m/s²]', 'number'),
           ('min_ade_3s', 'minADE 3 s [m]', 'number'),
           ('min_ade_6_4s', 'minADE 6.4 s [m]', 'number'), ('keyframes', 'keyframes', 'count'),
           ('decision_accuracy', 'decision acc.', 'percent'), ('plans', 'plans', 'count'),
           ('skips', 'no plan', 'skips'))
NOTES = """## What the numbers mean

- **collision / off-road**: share of episodes in which the ego hit a vehicle / left the
  drivable surface at least once (episode files give the first time). An episode ends at its
  first collision.
- **progress [m]**: distance along the scenario's route when the episode ended;
  **vs expert** divides it by the expert's progress on the same scenario and seed (1.0: as
  far as the expert; > 1 is possible by driving faster). It is measured by projecting the ego
  on the route, also while off the road, so read it together with the off-road column.
- **comfortable**: share of 6.4 s windows of the driven path (0.1 s resampling, one window
  starting every second after the warm-up, and the last one, up to any collision) that pass
  every comfort bound AR1's plans are judged by (runtime.comfort); **max jerk** and **max
  lat. acc.** are the largest magnitudes on that path, averaged over episodes.
- **minADE 3 s / 6.4 s** (open loop): at the keyframes of the expert's own drive (decision
  moments plus one every second), the policy plans from the expert's inputs; the error [m] of
  its best sample against what the expert then drove, over the first 3 s and the full 6.4 s.
  Pooled over all keyframes. The expert has none (it is the ground truth).
- **decision acc.** (model only): share of keyframes where the decision parsed from the
  model's reasoning equals the world's privileged label nearest in time.
- **plans / no plan** (tracked policies): replannings that gave a plan, and those that did
  not (assembly skip, or the safety gate rejected every sample; closed_loop.json has the
  reasons): then the previous plan is tracked on, the constant-velocity plan before any.
- **failed**: episodes that stopped on an error (e.g. the backend raised); they are left out
  of every other column.
- Every policy drives the first warm-up seconds under the expert (the model needs 1.6 s of
  history); the world waits for inference, so latency does not show here.
"""


def _format(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return 'n/a'
    if kind == 'skips':  # replannings without a plan, summed over the reasons
        return str(sum(value.values())) if value else '0'
    if kind == 'count':
        return str(int(value))
    if kind == 'percent':
        return f'{100 * value:.0f} %'
    return f'{value:.2f}'


def markdown_table(summary: Dict[str, Dict], first: str = 'policy',
                   prefix: Sequence[str] = ()) -> List[str]:
    """Return the markdown lines of a {policy: aggregate} table (columns: COLUMNS)."""
    header = [*(['scenario'] if prefix else []), first, *(c[1] for c in COLUMNS)]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for policy, row in summary.items():
        cells = [*prefix, policy, *(_format(row.get(k), kind) for k, _, kind in COLUMNS)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def _episode_rows(rows: Sequence[Dict]) -> List[str]:
    header = ('scenario', 'seed', 'policy', 'collision at [s]', 'off-road at [s]',
              'progress [m]', 'vs expert', 'comfortable', 'minADE 6.4 s [m]', 'plans', 'note')
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in rows:
        skips = ', '.join(f'{k} {v}' for k, v in r['skips'].items())
        note = r['error'] or (f'no plan: {skips}' if skips else '')
        lines.append('| ' + ' | '.join([
            r['scenario'], str(r['seed']), r['policy'],
            _format(r['collision_time_s'], 'number'), _format(r['off_road_time_s'], 'number'),
            _format(r['progress_m'], 'number'), _format(r['progress_rel'], 'ratio'),
            _format(r['comfort_rate'], 'percent'), _format(r['min_ade_6_4s'], 'number'),
            str(r['plans']), note.replace('|', '/')]) + ' |')
    return lines


def _collect(cases: Sequence[CaseResult], policies: Sequence[str]):
    rows = [c.metrics[p] for c in cases for p in policies if p in c.metrics]
    scores = {(c.scenario, c.seed, p): s for c in cases for p, s in c.scores.items()}
    return rows, scores


def summaries(cases: Sequence[CaseResult], policies: Sequence[str]) -> Dict:
    """Return {'aggregate': {policy: ...}, 'by_scenario': {scenario: {policy: ...}}}."""
    rows, scores = _collect(cases, policies)
    return {'aggregate': aggregate(rows, scores, policies),
            'by_scenario': aggregate_by_scenario(rows, scores, policies)}


def _json(cases: Sequence[CaseResult], policies: Sequence[str], numbers: Dict,
          meta: Dict) -> Dict:
    episodes = []
    for case in cases:
        for policy in policies:
            if policy in case.metrics:
                keyframes = [dict(dataclasses.asdict(s), decision_correct=s.decision_correct)
                             for s in case.scores.get(policy, [])]
                episodes.append(dict(case.metrics[policy], keyframes=keyframes))
    return {'meta': meta, **numbers, 'episodes': episodes}


def _markdown(cases: Sequence[CaseResult], policies: Sequence[str], numbers: Dict,
              meta: Dict, plots: List[str]) -> str:
    lines = ['# AR1 closed loop in the demo world', '', '| setting | value |', '|---|---|']
    lines += [f'| {k} | {str(v).replace("|", "/")} |' for k, v in meta.items()]
    lines += ['', '## Policies (all scenarios and seeds)', '',
              *markdown_table(numbers['aggregate']), '', '![aggregate](plots/summary.png)', '',
              '## Per scenario', '']
    header_done = False
    for scenario, table in numbers['by_scenario'].items():
        part = markdown_table(table, prefix=(scenario,))
        lines += part[2:] if header_done else part
        header_done = True
    rows, _ = _collect(cases, policies)
    lines += ['', '## Episodes', '', *_episode_rows(rows), '', '## Drives from above', '']
    lines += [f'![{name}](plots/{name})' for name in plots]
    return '\n'.join(lines + ['', NOTES])


def write_outputs(out, cases: Sequence[CaseResult], policies: Sequence[str],
                  meta: Dict) -> Dict[str, Path]:
    """Write closed_loop.json, report.md and plots/ into `out`; return the paths by name."""
    out = Path(out)
    (out / 'plots').mkdir(parents=True, exist_ok=True)
    numbers = summaries(cases, policies)
    plots = []
    for case in cases:
        name = f'{case.scenario}_{case.seed:03d}.png'
        (out / 'plots' / name).write_bytes(bev_png(case))
        plots.append(name)
    (out / 'plots' / 'summary.png').write_bytes(summary_png(numbers['aggregate']))
    json_path, report_path = out / JSON_NAME, out / REPORT_NAME
    json_path.write_text(json.dumps(_json(cases, policies, numbers, meta), indent=1) + '\n')
    report_path.write_text(_markdown(cases, policies, numbers, meta, plots))
    return {'json': json_path, 'report': report_path, 'plots': out / 'plots'}

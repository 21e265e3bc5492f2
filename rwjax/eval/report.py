"""The evaluation report: OUT/report.json, one plot per measure family, the printed table.

report['rows'] is a list with one row per (eval, task, layer, measure, batchnorm):
  {'eval': 'paper_probes', 'task': 'invariance_translate', 'layer': 'pooled',
   'measure': 'adam_best', 'batchnorm': 'batch',
   'pretrained': {'n', 'mean', 'std', 'values'}, 'random_init': {...},
   'difference', 'test', 't', 'p', 'effect_size'}     (rwjax.eval.stats.compare)
in eval, task, measure, mode and network-layer order. Measures: probe accuracies ACCURACY
('adam_best': the best test accuracy over epochs, the paper's number) and geometry
rwjax.eval.geometry.MEASURES. `find(report, **keys)` reads one row.
report['statistics'] says what one value is (a seed of one pre-trained network, or a
network) and the test; report['batchnorm'] how each mode's statistics were formed.
"""

import json
import os
import tempfile
from typing import Optional

import jax
import matplotlib

matplotlib.use('Agg')  # Files only; no display on TPU VMs or CI.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from rwjax.eval import geometry  # pylint: disable=g-import-not-at-top
from rwjax.eval import stats  # pylint: disable=g-import-not-at-top

KEYS = ('eval', 'task', 'layer', 'measure', 'batchnorm')
ACCURACY = ('logistic', 'adam_best', 'adam_last')
FAMILIES = {'accuracy': ACCURACY, 'geometry': geometry.MEASURES}
_ARMS = (('pretrained', 'pre-trained', 'tab:blue'), ('random_init', 'random init',
                                                    'tab:gray'))
_BATCHNORM = {
    'running': 'eval mode, the stored running statistics (pre-training / initial 0 and 1)',
    'batch': 'train-mode statistics of each group of {group} images (at most the set): a '
             'fixed permutation (PRNGKey(0)) of each image set cut into groups, the last '
             'topped up with the first images',
    'adapt': 'running statistics recomputed once on {adapt} images of {source}, then eval '
             'mode',
}


def assemble(out: dict, *, config, paired: bool, several: bool, workdirs: list,
             steps: list, networks: dict, configs: dict) -> dict:
  """The report dict from rwjax.evaluate.evaluate_networks' values."""
  layer_order = out['layers']
  rows = []
  for (ev, task, layer, measure, mode), by_arm in out['values'].items():
    if measure == 'solver_residual':
      continue
    c = stats.compare(by_arm.get('pretrained', []), by_arm.get('random_init', []),
                      paired=paired)
    rows.append({'eval': ev, 'task': task, 'layer': layer, 'measure': measure,
                 'batchnorm': mode, **c})
  residual = max([max(v) for (_, _, _, m, _), a in out['values'].items()
                  if m == 'solver_residual' for v in a.values()] or [0.0])
  a = config.adapt
  group = config.batchnorm_batch or config.batch_size
  modes = sorted({r['batchnorm'] for r in rows})
  return {
      'workdir': workdirs[0], 'step': steps[0], 'workdirs': workdirs, 'steps': steps,
      'seeds': config.seeds,
      'statistics': {
          'unit': 'network' if several else 'seed', 'test': 'paired t' if paired else
          'welch t', 'effect_size': 'hedges g', 'networks': networks,
          'note': ('one value per pre-training run: the test is across networks' if several
                   else 'one pre-trained network: its values vary only with the evaluation '
                   'draws, so p leaves out the variation between pre-training runs (pass '
                   'several workdirs for a test across networks)')},
      'batchnorm': {m: _BATCHNORM[m].format(group=group, adapt=a.images or 'all',
                                            source=f'{a.source} {a.split}') for m in modes},
      'evals': {name: c.to_dict() for name, c in config.evals.items()},
      'layers': layer_order,
      'rows': rows,
      'manifold_solver_residual': float(residual),
      'notes': out['notes'],
      'timing': out['timing'],
      'jax': {'version': jax.__version__, 'devices': [str(x) for x in jax.local_devices()]},
      'configs': configs,
  }


def find(report: dict, **keys) -> Optional[dict]:
  """The row with these key values (a subset of KEYS), or None; ValueError if several."""
  found = [r for r in report['rows'] if all(r[k] == v for k, v in keys.items())]
  if len(found) > 1:
    raise ValueError(f'{len(found)} rows match {keys}; name more keys of {KEYS}')
  return found[0] if found else None


def short_layer_name(name: str) -> str:
  """A tick label: 'layer2_block1_relu1' -> '2.1 relu1', 'stem_relu' -> 'stem relu',
  'projector_hidden0_relu' -> 'proj h0 relu', 'projector_output' -> 'proj out'."""
  parts = name.split('_')
  if len(parts) == 3 and parts[0].startswith('layer') and parts[1].startswith('block'):
    return f"{parts[0][len('layer'):]}.{parts[1][len('block'):]} {parts[2]}"
  if name == 'projector_output':
    return 'proj out'
  if parts[0] == 'projector':
    return f"proj h{parts[1][len('hidden'):]} {parts[2]}"
  return name.replace('_', ' ')


def panels(report: dict, family: str) -> dict:
  """(eval, task, measure, batchnorm) -> rows in layer order, for a family's measures."""
  out = {}
  for r in report['rows']:
    if r['measure'] in FAMILIES[family]:
      out.setdefault((r['eval'], r['task'], r['measure'], r['batchnorm']), []).append(r)
  return out


def plot_family(report: dict, family: str, path: str) -> None:
  """One panel per (eval, task, measure, BatchNorm mode): both arms' mean +- std per layer."""
  groups = panels(report, family)
  cols = min(4, len(groups))
  rows = -(-len(groups) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
  for ax in axes.flat[len(groups):]:
    ax.axis('off')
  for ax, ((ev, task, measure, mode), rs) in zip(axes.flat, groups.items()):
    names = [r['layer'] for r in rs]
    for arm, label, colour in _ARMS:
      if rs[0][arm]['n']:
        means = [float('nan') if r[arm]['mean'] is None else r[arm]['mean'] for r in rs]
        ax.errorbar(range(len(names)), means, yerr=[r[arm]['std'] or 0.0 for r in rs],
                    marker='o', capsize=3, label=label, color=colour, markersize=4)
    ax.set_xticks(range(len(names)), [short_layer_name(l) for l in names], rotation=90,
                  fontsize=7)
    ax.set_title(f'{ev}: {task}\n{measure}, BatchNorm {mode}', fontsize=8)
    ax.grid(alpha=0.3)
  axes.flat[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def table(report: dict) -> str:
  """Every row: both arms' mean +- std, the difference, p and the effect size, under a
  header saying what the values are."""
  st = report['statistics']
  lines = [f"values: {report['seeds']} {st['unit']}s per arm; test: {st['test']}, effect "
           f"size: {st['effect_size']}", f"note: {st['note']}"]
  lines += [f'BatchNorm {m}: {how}' for m, how in report['batchnorm'].items()]
  lines += [f'note: {n}' for n in report['notes']]
  widths = {k: max([len(k)] + [len(str(r[k])) for r in report['rows']]) + 2 for k in KEYS}
  lines.append(''.join(f'{k:<{widths[k]}}' for k in KEYS)
               + f"{'pre-trained':>16}{'random init':>16}{'diff':>9}{'p':>9}{'g':>7}")
  fmt = lambda s: stats.text(s['mean'], '.3f') + (f"+-{s['std']:.3f}" if s['std'] is not None
                                             else '')
  for r in report['rows']:
    lines.append(''.join(f'{str(r[k]):<{widths[k]}}' for k in KEYS)
                 + f"{fmt(r['pretrained']):>16}{fmt(r['random_init']):>16}"
                 f"{stats.text(r['difference'], '+.3f'):>9}{stats.text(r['p'], '.2g'):>9}"
                 f"{stats.text(r['effect_size'], '+.2f'):>7}")
  return '\n'.join(lines)


def write(report: dict, out_dir: str) -> list[str]:
  """Writes report.json and a plot per measure family into out_dir; returns the paths."""
  from rwjax import paths as paths_lib  # pylint: disable=g-import-not-at-top
  if paths_lib.is_remote(out_dir):  # a bucket: write locally, upload each file whole
    with tempfile.TemporaryDirectory() as tmp:
      local = write(report, tmp)
      remote = [paths_lib.join(out_dir, os.path.basename(p)) for p in local]
      for src, dst in zip(local, remote):
        paths_lib.upload(src, dst)
    return remote
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, 'report.json')]
  with open(paths[0] + '.tmp', 'w') as f:
    json.dump(report, f, indent=1, allow_nan=False)
  os.replace(paths[0] + '.tmp', paths[0])
  for family in FAMILIES:
    if panels(report, family):
      paths.append(os.path.join(out_dir, f'{family}.png'))
      plot_family(report, family, paths[-1])
  return paths

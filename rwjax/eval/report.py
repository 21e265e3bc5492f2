"""The evaluation report: DIR/eval/report.json, PNG plots and the printed table.

A report is a dict whose task results map layer -> `rwjax.eval.stats.compare` output:
  report['classification'][layer]
  report['exemplar'][transform][layer]
  report['shift'][str(pixels)][layer]
  report['capacity'][metric][kind][layer]  (metric: alpha, radius, dimension, center_corr;
                                            beside the settings P, M, n_t, kappa, ...;
                                            layers in network order: config.layers, or
                                            every ReLU output with capacity.layers='relus')
  report['paper']                          (rwjax.eval.paper_protocol.run; plotted as
                                            paper_probes.png and paper_manifolds.png)
Every row also names its 'protocol' (a key of report['protocols']: 'rwjax' for rwjax's own
probes and tasks, 'paper' for the paper's) and its 'batchnorm' mode; report['statistics'] says
what one value is (a seed of one pre-trained network, or a network) and which test was used,
report['batchnorm'] how the BatchNorm statistics were formed. The table prints both.
"""

import json
import os
import tempfile
from typing import Optional

import matplotlib

matplotlib.use('Agg')  # Files only; no display on TPU VMs or CI.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

_ARMS = (('pretrained', 'pre-trained (waves)', 'tab:blue'),
         ('random_init', 'random init', 'tab:gray'))


def tasks_of(report: dict) -> dict[str, dict]:
  """Task name -> {layer: comparison} for the per-layer tasks in a report."""
  tasks = {}
  if report.get('classification'):
    tasks['classification'] = report['classification']
  for transform, layers in (report.get('exemplar') or {}).items():
    tasks[f'exemplar {transform}'] = layers
  return tasks


def _units(report: dict) -> str:
  """'3 networks' (one value per pre-training run) or '3 seeds' (one pre-trained network)."""
  unit = (report.get('statistics') or {}).get('unit', 'seed')
  return f"{report['seeds']} {unit}s"


def _stars(p: Optional[float]) -> str:
  if p is None:
    return ''
  return '***' if p < 0.001 else '**' if p < 0.01 else '*' if p < 0.05 else 'n.s.'


def short_layer_name(name: str) -> str:
  """A tick label: 'layer2_block1_relu1' -> '2.1 relu1', 'layer2_block1_out' -> '2.1 out',
  'stem_relu' -> 'stem', 'projector_hidden0_relu' -> 'proj h0', 'projector_output' ->
  'proj out'; stage names ('layer2', 'pooled') are kept."""
  parts = name.split('_')
  if name == 'stem_relu':
    return 'stem'
  if len(parts) == 3 and parts[0].startswith('layer') and parts[1].startswith('block'):
    return f"{parts[0][len('layer'):]}.{parts[1][len('block'):]} {parts[2]}"
  if name == 'projector_output':
    return 'proj out'
  if parts[0] == 'projector':
    return f"proj h{parts[1][len('hidden'):]}"
  return name


def _nan(x) -> float:
  """None (an undefined number in the report) as NaN, which plots leave out."""
  return float('nan') if x is None else x


def _text(x, spec: str) -> str:
  return 'n/a' if x is None else format(x, spec)


def _layer_panel(ax, layers: dict, title: str) -> None:
  names = list(layers)
  for arm, label, colour in _ARMS:
    means = [_nan(layers[l][arm]['mean']) for l in names]
    stds = [layers[l][arm]['std'] or 0.0 for l in names]
    ax.errorbar(range(len(names)), means, yerr=stds, marker='o', capsize=3, label=label,
                color=colour, markersize=4 if len(names) > 8 else 6)
  if len(names) > 8:  # e.g. every ReLU output: short labels, upright text
    ax.set_xticks(range(len(names)), [short_layer_name(l) for l in names], rotation=90,
                  fontsize=7)
  else:
    ax.set_xticks(range(len(names)), names, rotation=30)
  ax.set_title(title)
  ax.set_ylabel('top-1 accuracy')
  ax.grid(alpha=0.3)


def plot_layers(report: dict, path: str) -> None:
  """Accuracy per layer, pre-trained vs random init, one panel per task."""
  tasks = tasks_of(report)
  fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.5), squeeze=False)
  for ax, (name, layers) in zip(axes[0], tasks.items()):
    _layer_panel(ax, layers, name)
  axes[0][0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_shift(report: dict, path: str) -> None:
  """Accuracy vs translation of the test images, one panel per layer."""
  shift = report['shift']
  pixels = sorted(shift, key=int)
  layers = list(shift[pixels[0]])
  fig, axes = plt.subplots(1, len(layers), figsize=(3 * len(layers), 3), squeeze=False,
                           sharey=True)
  for ax, layer in zip(axes[0], layers):
    for arm, label, colour in _ARMS:
      means = [_nan(shift[k][layer][arm]['mean']) for k in pixels]
      stds = [shift[k][layer][arm]['std'] or 0.0 for k in pixels]
      ax.errorbar([int(k) for k in pixels], means, yerr=stds, marker='o', capsize=3,
                  label=label, color=colour)
    ax.set_title(layer)
    ax.set_xlabel('shift (pixels)')
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel('top-1 accuracy')
  axes[0][0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_summary(report: dict, path: str) -> None:
  """Pre-trained minus random-init accuracy per layer and task, with significance marks."""
  tasks = tasks_of(report)
  if report.get('shift'):
    largest = max(report['shift'], key=int)
    tasks[f'shift {largest} px'] = report['shift'][largest]
  layers = list(next(iter(tasks.values())))
  width = 0.8 / len(tasks)
  fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(layers) * len(tasks) + 2), 4))
  for i, (name, results) in enumerate(tasks.items()):
    x = [j + (i - (len(tasks) - 1) / 2) * width for j in range(len(layers))]
    diffs = [results[l]['difference'] for l in layers]
    ax.bar(x, diffs, width, label=name)
    for xi, d, l in zip(x, diffs, layers):
      ax.annotate(_stars(results[l]['p']), (xi, d), ha='center', fontsize=7,
                  va='bottom' if d >= 0 else 'top')
  ax.axhline(0, color='black', linewidth=0.8)
  ax.set_xticks(range(len(layers)), layers)
  ax.set_ylabel('accuracy: pre-trained - random init')
  bn = (report.get('batchnorm') or {}).get('mode', 'running')
  ax.set_title(f"pre-trained vs random init over {_units(report)}, BatchNorm {bn} "
               '(* p<.05, ** p<.01, *** p<.001)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_networks(report: dict, path: str) -> None:
  """Every network's value per layer and task (one dot per network, both arms): the spread
  between pre-training runs that the test across networks measures."""
  tasks = tasks_of(report)
  fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.5), squeeze=False)
  for ax, (name, layers) in zip(axes[0], tasks.items()):
    names = list(layers)
    for offset, (arm, label, colour) in zip((-0.12, 0.12), _ARMS):
      for j, l in enumerate(names):
        values = [_nan(v) for v in layers[l][arm]['values']]
        ax.scatter([j + offset] * len(values), values, s=14, color=colour,
                   label=label if j == 0 else None)
    ax.set_xticks(range(len(names)), [short_layer_name(l) for l in names], rotation=30)
    p = [layers[l]['p'] for l in names]
    ax.set_title(f"{name}  ({', '.join(_stars(x) or '-' for x in p)})", fontsize=9)
    ax.set_ylabel('top-1 accuracy')
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  st = report.get('statistics') or {}
  fig.suptitle(f"one dot per network ({_units(report)} per arm; {st.get('test', '')})",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


_GEOMETRY = (('alpha', 'capacity alpha'), ('radius', 'radius R_M'),
             ('dimension', 'dimension D_M'), ('center_corr', 'center correlation rho_c'))


def plot_capacity(report: dict, path: str) -> None:
  """Manifold capacity, radius, dimension and center correlation per layer, pre-trained vs
  random init: one row per quantity, one column per manifold kind."""
  cap = report['capacity']
  kinds = cap['kinds']
  n_layers = len(cap['alpha'][kinds[0]])
  fig, axes = plt.subplots(len(_GEOMETRY), len(kinds),
                           figsize=(max(4.0, 0.3 * n_layers + 1) * len(kinds), 3 * 4),
                           squeeze=False, sharex=True)
  for row, (metric, label) in enumerate(_GEOMETRY):
    for col, kind in enumerate(kinds):
      ax = axes[row][col]
      _layer_panel(ax, cap[metric][kind], kind if row == 0 else '')
      ax.set_ylabel(label if col == 0 else '')
  for ax in axes[-1]:
    ax.set_xlabel('layer (network order)')
  axes[0][0].legend(fontsize=8)
  fig.suptitle(f"manifold geometry per layer (P={cap['P']}, M={cap['M']}, n_t={cap['n_t']}, "
               f"kappa={cap['kappa']:g}; {_units(report)})")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


_PAPER_PROBES = (('paper_protocol', 'paper protocol', '-'), ('logistic', 'logistic', '--'))


def _layer_ticks(ax, names: list) -> None:
  ax.set_xticks(range(len(names)), [short_layer_name(l) for l in names],
                rotation=90 if len(names) > 8 else 30, fontsize=7 if len(names) > 8 else None)


def plot_paper_probes(report: dict, path: str) -> dict:
  """report['paper']['probes']: accuracy per probe layer, both arms (mean +- std over seeds),
  the paper protocol's probe solid and the logistic probe dashed; one panel per paper task
  (invariance_* and the classification sets). Returns the plotted means,
  {task: {probe: {arm: [mean per layer]}}}, and the layers, {task: [layer, ...]}."""
  tasks = report['paper']['probes']
  fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.0, 0.3 * max(
      len(v) for v in tasks.values()) + 1.5) * len(tasks), 3.8), squeeze=False)
  series, layers_of = {}, {}
  for ax, (task, layers) in zip(axes[0], tasks.items()):
    names = list(layers)
    layers_of[task], series[task] = names, {}
    for measure, probe_label, style in _PAPER_PROBES:
      if not any(measure in layers[l] for l in names):
        continue
      series[task][measure] = {}
      for arm, label, colour in _ARMS:
        rows = [layers[l].get(measure) for l in names]
        means = [_nan(r[arm]['mean']) if r else float('nan') for r in rows]
        stds = [(r[arm]['std'] or 0.0) if r else 0.0 for r in rows]
        ax.errorbar(range(len(names)), means, yerr=stds, marker='o', capsize=3,
                    linestyle=style, color=colour, label=f'{label}, {probe_label}',
                    markersize=4 if len(names) > 8 else 6)
        series[task][measure][arm] = means
    _layer_ticks(ax, names)
    ax.set_title(f'{task} (paper protocol)', fontsize=9)
    ax.set_ylabel('test accuracy')
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7)
  fig.suptitle(f"paper protocol probes per layer ({report.get('seeds', '?')} seeds per arm; "
               'solid: paper protocol, best test accuracy over epochs; dashed: logistic)',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return {'series': series, 'layers': layers_of}


_PAPER_GEOMETRY = (('alpha', 'capacity alpha'), ('radius', 'radius R_M'),
                   ('dimension', 'dimension D_M'), ('participation_ratio', 'participation ratio'))


def plot_paper_manifolds(report: dict, path: str) -> dict:
  """report['paper']['manifolds']: capacity, radius, dimension and participation ratio per
  layer, both arms (mean +- std over seeds): one row per quantity, one column per manifold
  kind. Returns the plotted means, {kind: {measure: {arm: [mean per layer]}}}, and the
  layers, {kind: [layer, ...]}."""
  kinds = report['paper']['manifolds']
  n_layers = max(len(v) for v in kinds.values())
  fig, axes = plt.subplots(len(_PAPER_GEOMETRY), len(kinds),
                           figsize=(max(4.0, 0.3 * n_layers + 1) * len(kinds), 3 * 4),
                           squeeze=False, sharex='col')
  series, layers_of = {}, {}
  for col, (kind, layers) in enumerate(kinds.items()):
    names = list(layers)
    layers_of[kind], series[kind] = names, {}
    for row, (measure, label) in enumerate(_PAPER_GEOMETRY):
      ax = axes[row][col]
      series[kind][measure] = {}
      for arm, arm_label, colour in _ARMS:
        cells = [layers[l].get(measure) for l in names]
        means = [_nan(c[arm]['mean']) if c else float('nan') for c in cells]
        stds = [(c[arm]['std'] or 0.0) if c else 0.0 for c in cells]
        ax.errorbar(range(len(names)), means, yerr=stds, marker='o', capsize=3,
                    label=arm_label, color=colour, markersize=4 if len(names) > 8 else 6)
        series[kind][measure][arm] = means
      _layer_ticks(ax, names)
      ax.set_title(kind if row == 0 else '')
      ax.set_ylabel(label if col == 0 else '')
      ax.grid(alpha=0.3)
  for ax in axes[-1]:
    ax.set_xlabel('layer (network order)')
  axes[0][0].legend(fontsize=8)
  fig.suptitle(f"paper protocol manifold geometry per layer ({report.get('seeds', '?')} seeds "
               'per arm)')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return {'series': series, 'layers': layers_of}


def capacity_table(report: dict) -> str:
  """Per manifold kind and layer: both arms' capacity, radius and dimension (seed means)
  and the p of the capacity difference."""
  cap = report['capacity']
  w = max([8] + [len(l) + 2 for layers in cap['alpha'].values() for l in layers])
  rows = [f"{'capacity':<22}{'layer':<{w}}{'alpha pre / rand':>18}{'p':>9}"
          f"{'R_M pre / rand':>17}{'D_M pre / rand':>17}"]
  pair = lambda c, f: (f"{_text(c['pretrained']['mean'], f)} / "
                       f"{_text(c['random_init']['mean'], f)}")
  for kind in cap['kinds']:
    for layer, c in cap['alpha'][kind].items():
      p = f"{c['p']:.2g}" if c['p'] is not None else '-'
      rows.append(f"{kind:<22}{layer:<{w}}{pair(c, '.3f'):>18}{p:>9}"
                  f"{pair(cap['radius'][kind][layer], '.3f'):>17}"
                  f"{pair(cap['dimension'][kind][layer], '.1f'):>17}")
  return '\n'.join(rows)


def header(report: dict) -> str:
  """What the numbers are: the unit and test, the BatchNorm mode, the protocols."""
  st, bn = report.get('statistics') or {}, report.get('batchnorm') or {}
  lines = [f"values: {_units(report)} per arm; test: {st.get('test', 'paired t')}, effect "
           f"size: {st.get('effect_size', 'cohen d_z')}; BatchNorm: {bn.get('mode', 'running')}"
           + (f" (capacity: {bn['capacity_mode']})"
              if bn.get('capacity_mode', bn.get('mode')) != bn.get('mode') else '')]
  if st.get('note'):
    lines.append(f"note: {st['note']}")
  for name, text in (report.get('protocols') or {}).items():
    lines.append(f'protocol {name}: {text}')
  return '\n'.join(lines)


def table(report: dict) -> str:
  """A short text table: per task and layer, the protocol the row follows, both arms' mean
  +- std, difference, p and effect size; under a header saying what the values are."""
  rows = [header(report), '',
          f"{'task':<22}{'layer':<8}{'protocol':>9}{'pre-trained':>15}{'random init':>15}"
          f"{'diff':>8}{'p':>9}{'effect':>8}"]
  tasks = tasks_of(report)
  for k, layers in sorted((report.get('shift') or {}).items(), key=lambda kv: int(kv[0])):
    tasks[f'shift {k} px'] = layers
  fmt = lambda s: _text(s['mean'], '.3f') + (f"+-{s['std']:.3f}" if s['std'] is not None else '')
  for name, layers in tasks.items():
    for layer, c in layers.items():
      p = f"{c['p']:.2g}" if c['p'] is not None else '-'
      rows.append(f"{name:<22}{layer:<8}{c.get('protocol', 'rwjax'):>9}"
                  f"{fmt(c['pretrained']):>15}{fmt(c['random_init']):>15}"
                  f"{_text(c['difference'], '+.3f'):>8}{p:>9}"
                  f"{_text(c.get('effect_size'), '+.2f'):>8}")
  if report.get('capacity'):
    rows += ['', capacity_table(report)]
  return '\n'.join(rows)


def write(report: dict, out_dir: str) -> list[str]:
  """Writes report.json and the plots into out_dir; returns the written paths."""
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
    json.dump(report, f, indent=2, allow_nan=False)
  os.replace(paths[0] + '.tmp', paths[0])
  if tasks_of(report):
    paths.append(os.path.join(out_dir, 'accuracy_per_layer.png'))
    plot_layers(report, paths[-1])
  if report.get('shift'):
    paths.append(os.path.join(out_dir, 'accuracy_vs_shift.png'))
    plot_shift(report, paths[-1])
  if tasks_of(report) or report.get('shift'):
    paths.append(os.path.join(out_dir, 'summary.png'))
    plot_summary(report, paths[-1])
  if tasks_of(report) and (report.get('statistics') or {}).get('unit') == 'network':
    paths.append(os.path.join(out_dir, 'networks.png'))
    plot_networks(report, paths[-1])
  if report.get('capacity'):
    paths.append(os.path.join(out_dir, 'capacity_per_layer.png'))
    plot_capacity(report, paths[-1])
  paper_block = report.get('paper') or {}
  if paper_block.get('probes'):
    paths.append(os.path.join(out_dir, 'paper_probes.png'))
    plot_paper_probes(report, paths[-1])
  if paper_block.get('manifolds'):
    paths.append(os.path.join(out_dir, 'paper_manifolds.png'))
    plot_paper_manifolds(report, paths[-1])
  return paths

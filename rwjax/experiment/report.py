"""The experiment's report: DIR/report.md, a self-contained DIR/report.html (figures embedded
as base64 PNG), DIR/figures/*.png and DIR/results.json (every number behind the report).

The report is a list of blocks (headings, paragraphs, tables, figures) rendered as Markdown and
as HTML. Its numbers and claim rules: docs/experiment.md, rwjax.eval.claims.
"""

import base64
import html
import io
import json
import os
from typing import Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from rwjax import paths as paths_lib
from rwjax.eval import claims as claims_lib
from rwjax.eval.report import short_layer_name
from rwjax.experiment.arms import ARMS, CLAIMS_ARMS

CLAIMS = {
    '1': 'Translation-invariance task: waves > random init (p < 0.05 across networks) at the '
         'encoder output',
    '2': 'Classification (CIFAR-10, MNIST): waves >= random init',
    '3': 'Manifold capacity of translation manifolds: waves > random init, the gap largest '
         'in the late layers',
    '4': f'Controls: the altered movies lose most of the gain (each keeps less than '
         f"{claims_lib.MOST:.0%} of the wave arm's gain, and the wave arm is above it by a "
         'direct test)',
    '5': 'Rotation and colour tasks: the gain is specific to translation',
}


def _networks(a: list, b: list) -> Optional[dict]:
  return claims_lib.compare_networks(a, b) if a and b else None


class Results:
  """results[arm][seed][step][row key] -> value, with the comparisons of the report."""

  def __init__(self, plan, results: dict):
    self.plan, self.r = plan, results
    self.final = max(plan.steps)
    self.steps = tuple(plan.steps)

  def by_seed(self, arm: str, key: tuple, step: int) -> dict:
    step = step if ARMS[arm].trained else 0
    by = {seed: m.get(step, {}).get(key) for seed, m in sorted(self.r.get(arm, {}).items())}
    return {seed: v for seed, v in by.items() if v is not None}

  def values(self, arm: str, key: tuple, step: int) -> list[float]:
    return list(self.by_seed(arm, key, step).values())

  def compare(self, arm: str, key: Optional[tuple], step: Optional[int] = None,
              baseline: str = 'random_init') -> Optional[dict]:
    step = self.final if step is None else step
    return None if key is None else _networks(self.values(arm, key, step),
                                              self.values(baseline, key, step))

  def excess(self, arm: str, key: tuple, over: tuple) -> Optional[dict]:
    """The per-network difference key - over, compared between the arm and random init."""
    def diff(a):
      k, o = self.by_seed(a, key, self.final), self.by_seed(a, over, self.final)
      return claims_lib.difference(list(k.values()), [o.get(seed) for seed in k])
    return _networks(diff(arm), diff('random_init'))

  def keys(self) -> list[tuple]:
    """Every row measured, in report order (from the random-init networks)."""
    ri = self.r.get('random_init', {})
    return list(dict.fromkeys(k for seed in sorted(ri) for k in ri[seed].get(0, {})))

  def match(self, spec: claims_lib.Spec) -> list[tuple]:
    return [k for k in self.keys() if spec.matches(k)]

  def one(self, spec: claims_lib.Spec) -> Optional[tuple]:
    return next(iter(self.match(spec)), None)

  def arms(self) -> list[str]:
    return [a for a in self.plan.arms if a in self.r]


def _fmt(x, spec='.3f'):
  return '-' if x is None else format(x, spec)


def _gain(c: Optional[dict]):
  return (c or {}).get('gain')


def _num(c: Optional[dict], field: str = 'gain') -> str:
  """A comparison's gain (+.3f) or p (.2g); '-' without one."""
  return _fmt((c or {}).get(field), '+.3f' if field == 'gain' else '.2g')


def _kept(c: Optional[dict], of: Optional[dict]) -> str:
  """The share of comparison `of`'s gain that `c` keeps."""
  return _fmt(claims_lib.kept(_gain(c), _gain(of)), '.0%')


def _cell(c: Optional[dict], baseline: bool = False) -> str:
  if c is None:
    return '-'
  if baseline:
    return f"{_fmt(c['baseline_mean'])} +- {_fmt(c['baseline_std'])}"
  return (f"{_fmt(c['mean'])} +- {_fmt(c['std'])} ({_num(c)}, p={_num(c, 'p')}, "
          f"g={_fmt(c['g'], '.1f')})")


def _specs(config, name: str) -> list[claims_lib.Spec]:
  return [claims_lib.parse(s.strip(), f'config.claims.{name}')
          for s in config.claims[name].split(',') if s.strip()]


def evaluate_claims(res: Results, arm: Optional[str]) -> list[dict]:
  """Every claim's verdicts for wave arm `arm`: one row per claim and reading (claim 2 with
  two probes, claim 3 per BatchNorm mode, claim 4 per measure), with the numbers behind it,
  the measure read, the wave arm's gain at every evaluation step and the row keys the steps
  figure plots ('plot': claim 3's at the encoder output)."""
  config = res.plan.config
  row = lambda n, reading='', **kw: {'claim': n, 'reading': reading, 'text': CLAIMS[n],
                                     'verdict': claims_lib.INCONCLUSIVE, 'numbers': '',
                                     'measure': '', 'by_step': {}, 'plot': [], **kw}
  if arm is None or arm not in res.r:
    return [row(n, numbers='no wave arm has results') for n in CLAIMS]
  gain_by_step = lambda key: {s: _gain(res.compare(arm, key, s)) for s in res.steps}
  rows = []
  trans = res.one(_specs(config, 'translation')[0])
  t = res.compare(arm, trans)
  last = (res.one(claims_lib.Spec(*trans[:3], 'adam_last', trans[4]))
          if trans and trans[3] == 'adam_best' else None)
  rows.append(row('1', verdict=claims_lib.translation(t), numbers=claims_lib.describe(t) + (
      f'; last epoch: {claims_lib.describe(res.compare(arm, last))}' if last else ''),
                  measure='/'.join(trans) if trans else 'not measured',
                  by_step=gain_by_step(trans) if trans else {}, plot=[trans] if trans else []))
  for name, reading in (('classification', "the paper's probe"),
                        ('classification_logistic', 'logistic probe')):
    keys = [k for spec in _specs(config, name) for k in res.match(spec)[:1]]
    cs = [res.compare(arm, k) for k in keys]
    rows.append(row('2', reading, verdict=claims_lib.not_worse(cs),
                    measure=', '.join('/'.join(k) for k in keys) or 'not measured',
                    numbers='; '.join(f'{k[1]}: {claims_lib.describe(c)}'
                                      for k, c in zip(keys, cs)) or 'not measured',
                    by_step=gain_by_step(keys[0]) if keys else {}, plot=keys))
  encoder = {}  # mode -> the encoder output's key of claim 3
  for spec in _specs(config, 'capacity'):
    keys = res.match(spec)
    mode = keys[0][4] if keys else spec.batchnorm
    per_layer = {k[2]: res.compare(arm, k) for k in keys}
    verdict, top = claims_lib.capacity(per_layer)
    e = claims_lib.encoder_output(list(per_layer))
    encoder[mode] = next((k for k in keys if k[2] == e), None)
    gains = ', '.join(f'{short_layer_name(l)} {_num(c)}'
                      for l, c in per_layer.items() if l in claims_lib.backbone(per_layer))
    rows.append(row('3', f'BatchNorm {mode}', verdict=verdict,
                    measure=str(spec) if keys else 'not measured',
                    numbers=(f'encoder output ({e}): {claims_lib.describe(per_layer.get(e))}; '
                             f'largest gain at {top}; gains per layer: {gains}') if e else
                    'not measured', by_step=gain_by_step(encoder[mode]) if e else {},
                    plot=[encoder[mode]] if encoder[mode] else []))
  if 'running' in encoder and 'adapt' in encoder:
    rows[-1]['numbers'] += '. ' + claims_lib.survives(res.compare(arm, encoder['running']),
                                                      res.compare(arm, encoder['adapt']))
  ctrl = [a for a in res.arms() if ARMS[a].role == 'control' and ARMS[a].reference == arm]
  for reading, key in [('on claim 1', trans)] + [(f'on claim 3, BatchNorm {m}', k)
                                                 for m, k in encoder.items()]:
    w = res.compare(arm, key)
    cc = {a: res.compare(a, key) for a in ctrl}
    direct = {a: res.compare(arm, key, baseline=a) for a in ctrl}
    rows.append(row('4', reading, verdict=claims_lib.controls(w, cc, direct),
                    measure='/'.join(key) if key else 'not measured',
                    numbers=(f"wave arm gain {_num(w)} (p={_num(w, 'p')}); " + '; '.join(
                        f'{a}: gain {_num(c)}, keeps {_kept(c, w)}, wave arm - {a} '
                        f"{_num(direct[a])} (p={_num(direct[a], 'p')})"
                        for a, c in cc.items())) if cc and key else
                    f'no control of {arm} has results',
                    by_step={s: {a: claims_lib.kept(_gain(res.compare(a, key, s)),
                                                    _gain(res.compare(arm, key, s)))
                                 for a in ctrl} for s in res.steps} if key else {},
                    plot=[key] if key else []))
  others, excess, found = {}, {}, {}
  for name in ('rotation', 'color'):
    key = res.one(_specs(config, name)[0])
    if key and trans:
      found[name] = key
      others[name] = res.compare(arm, key)
      excess[name] = res.excess(arm, key, trans)
  rows.append(row('5', verdict=claims_lib.specific(t, others, excess),
                  measure=', '.join(str(s) for n in ('rotation', 'color')
                                    for s in _specs(config, n)),
                  numbers=(f'translation gain {_num(t)}; ' + '; '.join(
                      f'{k}: {claims_lib.describe(c)}, keeps {_kept(c, t)}, gain over '
                      f"translation {_num(excess[k])} (p={_num(excess[k], 'p')})"
                      for k, c in others.items())) if others else 'not measured',
                  by_step={s: {k: _gain(res.compare(arm, key, s))
                               for k, key in {'translation': trans, **found}.items()}
                           for s in res.steps}, plot=list(found.values())))
  return rows


# ---------------------------------------------------------------------------------------
# Figures.

def _png(fig) -> bytes:
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=90, bbox_inches='tight')
  plt.close(fig)
  return buf.getvalue()


def _grid(res: Results, panels: list, width: float):
  """A figure of panels (title, x, [(row key, step) per x]): every arm's mean +- std over
  networks at each x. Returns (figure, the panels' axes)."""
  arms = res.arms()
  colors = {a: plt.get_cmap('tab20')(i % 20) for i, a in enumerate(arms)}
  colors['random_init'] = (0.3, 0.3, 0.3, 1.0)
  cols = min(4, len(panels))
  rows = -(-len(panels) // cols)
  fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(width * cols, 3.2 * rows))
  for ax, (title, x, points) in zip(axes.flat, panels):
    for arm in arms:
      vals = [res.values(arm, key, step) for key, step in points]
      ax.errorbar(x, [np.mean(v) if v else np.nan for v in vals],
                  yerr=[np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals], label=arm,
                  color=colors[arm], marker='o', ms=3, capsize=2)
    ax.set_title(title, fontsize=7)
  for ax in list(axes.flat)[len(panels):]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=6, ncol=2)
  return fig, axes.flat[:len(panels)]


def layers_figure(res: Results, measures: tuple, title: str) -> Optional[bytes]:
  """One panel per (eval, task, measure, BatchNorm mode) measured at >= 2 layers: every
  arm's mean +- std over networks per layer, at the final step."""
  panels = {}
  for k in res.keys():
    if k[3] in measures:
      panels.setdefault((k[0], k[1], k[3], k[4]), []).append(k)
  panels = [('/'.join(p), np.arange(len(ks)), [(k, res.final) for k in ks])
            for p, ks in panels.items() if len(ks) >= 2]
  if not panels:
    return None
  fig, axes = _grid(res, panels, 4.2)
  for ax, (_, x, points) in zip(axes, panels):
    ax.set_xticks(x, [short_layer_name(k[2]) for k, _ in points], rotation=70, fontsize=6)
  fig.suptitle(f'{title}, step {res.final}, mean +- std over networks', fontsize=10)
  return _png(fig)


def figure_panels(claim_rows: list[dict]) -> dict[str, tuple]:
  """{panel title: row key} of the steps figure: one panel per key a claim row plots (each
  dataset of claim 2 its own), a key that an earlier row already plots not again."""
  keys = {}
  for r in claim_rows:
    title = f"claim {r['claim']} {r['reading']}".strip()
    for key in r['plot']:
      if key not in keys.values():
        keys[f'{title}, {key[1]}' if len(r['plot']) > 1 else title] = key
  return keys


def steps_figure(res: Results, claim_rows: list[dict]) -> Optional[bytes]:
  """Each claim's measure against training steps, every arm (mean +- std over networks)."""
  keys = figure_panels(claim_rows)
  if len(res.steps) < 2 or not keys:
    return None
  fig, axes = _grid(res, [(f"{title}\n{'/'.join(key)}", res.steps,
                           [(key, s) for s in res.steps]) for title, key in keys.items()], 4.5)
  for ax in axes:
    ax.set_xlabel('training step', fontsize=8)
  return _png(fig)


# ---------------------------------------------------------------------------------------
# Blocks -> Markdown and HTML.

def _md(blocks) -> str:
  esc = lambda s: str(s).replace('|', '\\|').replace('\n', ' ')
  row = lambda r: '| ' + ' | '.join(map(esc, r)) + ' |'
  render = {'h': lambda n, text: '#' * n + ' ' + text, 'p': lambda text: text,
            'pre': lambda text: f'```\n{text}\n```',
            'table': lambda head, rows: '\n'.join(
                [row(head), '|' + ' --- |' * len(head)] + [row(r) for r in rows]),
            'img': lambda path, caption: f'![{caption}]({path})'}
  return '\n\n'.join(render[b[0]](*b[1:]) for b in blocks) + '\n'


def _html(blocks, images: dict) -> str:
  esc = lambda s: html.escape(str(s))
  verdicts = (claims_lib.HELD, claims_lib.NOT_HELD, claims_lib.INCONCLUSIVE)
  cls = lambda v: f' class="{v.replace(" ", "-")}"' if v in verdicts else ''
  row = lambda r, tag='td': '<tr>' + ''.join(
      f'<{tag}{cls(str(v))}>{esc(v)}</{tag}>' for v in r) + '</tr>'
  render = {
      'h': lambda n, text: f'<h{n}>{esc(text)}</h{n}>', 'p': lambda text: f'<p>{esc(text)}</p>',
      'pre': lambda text: f'<pre>{esc(text)}</pre>',
      'table': lambda head, rows: ('<table>' + row(head, 'th') + ''.join(map(row, rows))
                                   + '</table>'),
      'img': lambda path, caption: (
          f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,'
          f'{base64.b64encode(images[path]).decode()}"><figcaption>{esc(caption)}'
          '</figcaption></figure>')}
  return '\n'.join(
      ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>rwjax experiment</title>'
       '<style>body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}'
       'table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid '
       '#ccc;padding:2px 6px;text-align:left;vertical-align:top}th{background:#eee}'
       'img{max-width:100%}pre{background:#f6f6f6;padding:0.5em;overflow-x:auto}'
       '.held{background:#cfc}.not-held{background:#fcc}.inconclusive{background:#ffc}'
       '</style></head><body>'] + [render[b[0]](*b[1:]) for b in blocks] + ['</body></html>'])


# ---------------------------------------------------------------------------------------
# The report.

def write(plan, results: dict, machine: dict, elapsed_s: float) -> dict:
  """Writes the report files; returns {'claims': rows, 'other_claims', 'null', 'files'}."""
  from rwjax.experiment import to_json  # pylint: disable=g-import-not-at-top
  res = Results(plan, results)
  config = plan.config
  images, blocks = {}, []
  add = blocks.append

  def figure(name, png, caption):
    if png is not None:
      path = f'figures/{name}.png'
      images[path] = png
      add(('img', path, caption))

  add(('h', 1, f'rwjax experiment: {config.scale} scale'))
  add(('p', 'Does pre-training on retinal waves give a network better natural-image '
            'representations than random init (arXiv:2312.02791)? Each arm is pre-trained '
            f'from {config.seeds} seed(s) and evaluated at steps {list(plan.steps)}; every '
            "number below is one per network (the evaluator's value), compared with the "
            f'random-init networks by {claims_lib.TEST}. Nothing is tuned per arm.'))
  if config.budget:
    add(('p', f'Training budget: {config.budget}'))
  add(('h', 2, 'Claims'))
  add(('p', f'Rules (rwjax/eval/claims.py, fixed before the runs): significance p < '
            f"{claims_lib.ALPHA}; a control or task \"keeps\" gain_other / gain_waves of the "
            f"wave arm's gain, \"most\" is lost below {claims_lib.MOST:.0%}. Verdicts at step "
            f'{res.final}.'))
  arm = (config.claims.waves_arm if config.claims.waves_arm != 'auto'
         else next((a for a in CLAIMS_ARMS if a in res.r), None))
  rows = evaluate_claims(res, arm)
  by_step = lambda r: '; '.join(
      f'{s}: ' + (', '.join(f'{k} {_fmt(v, "+.3f")}' for k, v in x.items())
                  if isinstance(x, dict) else _fmt(x, '+.3f')) for s, x in r['by_step'].items())
  add(('p', f'Wave arm: {arm} ({ARMS[arm].describe if arm else "none ran"}).'))
  add(('table', ['#', 'claim', 'reading', 'verdict', 'numbers', 'measure',
                 'gain against steps'],
       [[r['claim'], r['text'], r['reading'], r['verdict'], r['numbers'], r['measure'],
         by_step(r)] for r in rows]))
  other = {a: evaluate_claims(res, a) for a in res.arms()
           if ARMS[a].role == 'waves' and a != arm}
  if other:
    add(('p', 'The same rules for the other wave arms:'))
    add(('table', ['arm'] + [f"claim {r['claim']} {r['reading']}".strip() for r in rows],
         [[a] + [r['verdict'] for r in rs] for a, rs in other.items()]))
  sig, tested = (claims_lib.null_rate([res.compare('null', k) for k in res.keys()])
                 if 'null' in res.r else (0, 0))
  add(('p', f'Null arm (random inits of other seeds standing in as pre-trained): {sig} of '
            f'{tested} rows "significant" at p < {claims_lib.ALPHA} '
            f'(rate {_fmt(sig / tested if tested else None, ".2f")}; about '
            f'{claims_lib.ALPHA} is what trustworthy tests give).' if tested else
            'Null arm: no results.'))
  figure('claims_vs_steps', steps_figure(res, rows),
         "Each claim's measure against training steps, every arm (mean +- std over "
         'networks; step 0 is the random-init network).')
  add(('h', 2, 'Figures'))
  figure('accuracy', layers_figure(res, ('logistic', 'adam_best', 'adam_last'), 'Accuracy'),
         'Probe accuracy per layer')
  figure('geometry', layers_figure(res, ('alpha', 'radius', 'dimension'), 'Geometry'),
         'Manifold capacity, radius and dimension per layer')
  add(('h', 2, 'Arms'))
  add(('table', ['arm', 'role', 'what', 'overrides of config.pretrain', 'status'],
       [[a, ARMS[a].role, ARMS[a].describe,
         ', '.join(f'{k}={v!r}' for k, v in ARMS[a].overrides.items()),
         'ran' if a in res.r else 'no results yet'] for a in plan.arms]))
  add(('h', 2, 'Evaluations'))
  add(('table', ['eval', 'type', 'BatchNorm', 'layers', 'tasks / kinds'],
       [[n, e.type, ', '.join(e.batchnorm), e.layers,
         ', '.join(e.kinds) if e.type == 'manifolds' else ', '.join(
             list(e.invariance.transforms) + list(e.classification.sources)
             + list(e.exemplar.transforms))] for n, e in plan.evaluate.evals.items()]))
  add(('h', 2, f'Every measure (step {res.final})'))
  add(('p', 'Cells: mean +- std over pre-training networks (gain over random init, Welch p '
            "across networks, Hedges' g)."))
  arms = [a for a in res.arms() if a != 'random_init']
  add(('table', ['eval/task/layer/measure/batchnorm', 'random_init'] + arms,
       [['/'.join(k), _cell(res.compare('random_init', k), baseline=True)]
        + [_cell(res.compare(a, k)) for a in arms] for k in res.keys()]))
  add(('h', 2, 'Settings and machine'))
  add(('table', ['setting', 'value'], [
      ['scale', config.scale], ['seeds', f'{config.seeds} (first {config.first_seed})'],
      ['training steps', config.pretrain.train.steps], ['evaluation steps', list(plan.steps)],
      ['devices for training', plan.n_devices],
      ['elapsed (this invocation)', f'{elapsed_s:.0f} s' + (
          ' (the report only; the runs\' times are in the table below)'
          if config.report_only else '')],
      ['only', config.only or '(whole matrix)'], ['recordings', config.recordings or '-']]
      + [[k, v if not isinstance(v, list) else ', '.join(v)] for k, v in machine.items()]))
  for name in sorted({m for a in plan.arms for m in ARMS[a].movies}):
    path = os.path.join(plan.paths['{movies}'], name, 'settings.json')
    if paths_lib.exists(path):
      add(('p', f'Movie {name}: ' + paths_lib.read_json(path)['command']))
  if plan.recordings or plan.rejected:
    add(('p', f'Recordings used: {[os.path.basename(r) for r in plan.recordings]}; not used: '
              + '; '.join(f'{os.path.basename(k)} ({v})' for k, v in plan.rejected.items())))
  timing = [[r.arm, r.seed, f"{t['train_s']:.0f}", f"{t['eval_s']:.0f}"]
            for r in sorted(plan.runs, key=lambda r: (r.arm, r.seed))
            for path in [os.path.join(r.dir, 'timing.json')] if paths_lib.exists(path)
            for t in [paths_lib.read_json(path)]]
  if timing:
    add(('table', ['arm', 'seed', 'train s', 'eval s'], timing))
  add(('p', 'The experiment config:'))
  add(('pre', json.dumps(to_json(config), indent=1, sort_keys=True)))

  paths_lib.makedirs(os.path.join(plan.workdir, 'figures'))
  for path, png in images.items():
    paths_lib.write_atomic(os.path.join(plan.workdir, path), png)
  files = {k: os.path.join(plan.workdir, name) for k, name in (
      ('md', 'report.md'), ('html', 'report.html'), ('json', 'results.json'))}
  paths_lib.write_atomic(files['md'], _md(blocks))
  paths_lib.write_atomic(files['html'], _html(blocks, images))
  summary = {'claims_arm': arm, 'claims': rows, 'other_claims': other,
             'null': {'significant': sig, 'tested': tested}, 'arms': list(plan.arms),
             'steps': list(plan.steps),
             'results': {a: {str(s): {str(st): {'/'.join(k): v for k, v in m.items()}
                                      for st, m in by.items()}
                             for s, by in seeds.items()} for a, seeds in results.items()},
             'machine': machine, 'files': files}
  paths_lib.write_atomic(files['json'], json.dumps(summary, indent=1, default=str))
  return summary

"""The experiment's report: DIR/report.md, a self-contained DIR/report.html (figures embedded
as base64 PNG), DIR/figures/*.png and DIR/results.json (every number behind the report).

The report is a list of blocks (headings, paragraphs, tables, figures) rendered twice, as
Markdown and as HTML. Numbers: per arm and measure (task / layer of the evaluator's report),
the mean +- std over pre-training networks, the gain over random init, the p-value and the
effect size of rwjax.eval.claims (Welch's t-test across networks, Cohen's d); the claims
table applies the rules of rwjax.eval.claims, fixed before any result existed.
"""

import base64
import html
import io
import json
import os
import re
from typing import Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from rwjax import paths as paths_lib
from rwjax.eval import claims as claims_lib
from rwjax.eval.features import LAYERS
from rwjax.eval.report import short_layer_name
from rwjax.models.resnet import BACKBONE_RELUS

LAYER = '<layer>'
_LAYER_NAMES = frozenset(LAYERS) | frozenset(BACKBONE_RELUS) | {'input'}

CLAIMS = (
    ('1', 'Translation-invariance task: waves > random init (p < 0.05 across seeds) at the '
          'encoder output'),
    ('2', 'Classification (CIFAR-10, MNIST): waves >= random init'),
    ('3', 'Manifold capacity of translation manifolds: waves > random init, the gap largest '
          'in the late layers'),
    ('4', f'Controls: the shuffled waves lose most of the gain ("most": each control keeps '
          f'less than {claims_lib.MOST:.0%} of the wave arm\'s gain on claim 1\'s measure)'),
    ('5', 'Rotation and colour tasks: the gain is specific to translation (each keeps less '
          f'than {claims_lib.MOST:.0%} of the translation gain)'),
)


# ---------------------------------------------------------------------------------------
# Looking numbers up.

class Results:
  """results[arm][seed][protocol][step][path] -> value, with the comparisons of the report."""

  def __init__(self, plan, results: dict):
    self.plan, self.r = plan, results
    self.final = max(plan.steps)
    self.steps = tuple(plan.steps)

  def step_of(self, arm: str, step: int) -> int:
    from rwjax.experiment import ARMS  # pylint: disable=g-import-not-at-top
    return step if ARMS[arm].trained else 0

  def values(self, arm: str, protocol: str, path: str, step: int) -> list[float]:
    step = self.step_of(arm, step)
    out = []
    for seed in sorted(self.r.get(arm, {})):
      v = self.r[arm][seed].get(protocol, {}).get(step, {}).get(path)
      if v is not None:
        out.append(v)
    return out

  def compare(self, arm: str, protocol: str, path: str, step: Optional[int] = None):
    step = self.final if step is None else step
    a = self.values(arm, protocol, path, step)
    b = self.values('random_init', protocol, path, 0)
    return claims_lib.compare_networks(a, b) if a and b else None

  def paths(self, protocol: str) -> list[str]:
    """Every measure of the protocol, in report order (from the random-init networks)."""
    out = {}
    for seed in sorted(self.r.get('random_init', {})):
      for path in self.r['random_init'][seed].get(protocol, {}).get(0, {}):
        out[path] = None
    return list(out)

  def layers(self, protocol: str, template: str) -> list[str]:
    """The layers L (in report order) for which template.replace('<layer>', L) was measured."""
    pattern = re.compile('^' + re.escape(template).replace(re.escape(LAYER), '([^/]+)') + '$')
    return [m.group(1) for m in map(pattern.match, self.paths(protocol)) if m]

  def arms(self) -> list[str]:
    return [a for a in self.plan.arms if a in self.r]

  def resolve(self, spec: str) -> list[tuple[str, str]]:
    """The (protocol, path) candidates of a claims spec that were measured."""
    out = []
    for item in spec.split(','):
      protocol, _, path = item.strip().partition(':')
      if (self.layers(protocol, path) if LAYER in path else path in self.paths(protocol)):
        out.append((protocol, path))
    return out


def split_layer(path: str) -> tuple[str, Optional[str]]:
  """(template with the layer part replaced by '<layer>', layer) of a measure path, e.g.
  'capacity/alpha/translate/layer2' -> ('capacity/alpha/translate/<layer>', 'layer2')."""
  parts = path.split('/')
  for i in reversed(range(len(parts))):
    if parts[i] in _LAYER_NAMES or parts[i].startswith('projector'):
      return '/'.join(parts[:i] + [LAYER] + parts[i + 1:]), parts[i]
  return path, None


def _fmt(x, spec='.3f'):
  return '-' if x is None else format(x, spec)


def _cell(c: Optional[dict], baseline: bool = False) -> str:
  if c is None:
    return '-'
  if baseline:
    return f"{_fmt(c['baseline_mean'])} +- {_fmt(c['baseline_std'])}"
  return (f"{_fmt(c['mean'])} +- {_fmt(c['std'])} ({_fmt(c['gain'], '+.3f')}, "
          f"p={_fmt(c['p'], '.2g')}, d={_fmt(c['d'], '.1f')})")


# ---------------------------------------------------------------------------------------
# Claims.

def evaluate_claims(res: Results, arm: Optional[str]) -> list[dict]:
  """The five claims for wave arm `arm`: verdict, the numbers behind it, the measure used and
  the claim's measure at every evaluation step."""
  from rwjax.experiment import ARMS  # pylint: disable=g-import-not-at-top
  c = res.plan.config.claims
  rows = [{'claim': n, 'text': t, 'verdict': claims_lib.INCONCLUSIVE, 'numbers': '',
           'measure': '', 'by_step': {}} for n, t in CLAIMS]
  if arm is None or arm not in res.r:
    for row in rows:
      row['numbers'] = 'no wave arm has results'
    return rows
  gain = lambda m, a=arm, s=None: res.compare(a, m[0], m[1], s)
  steps = res.steps

  def by_step(m, a=arm):
    return {s: (gain(m, a, s) or {}).get('gain') for s in steps}

  trans = res.resolve(c.translation)[:1]
  t = gain(trans[0]) if trans else None
  rows[0].update(comparison=t, verdict=claims_lib.translation(t), numbers=claims_lib.describe(t),
                 measure=':'.join(trans[0]) if trans else 'not measured',
                 by_step=by_step(trans[0]) if trans else {})

  cls = res.resolve(c.classification)
  cs = [gain(m) for m in cls]
  rows[1].update(verdict=claims_lib.not_worse(cs), measure=', '.join(':'.join(m) for m in cls)
                 or 'not measured',
                 numbers='; '.join(f'{m[0]}:{m[1]}: {claims_lib.describe(x)}'
                                   for m, x in zip(cls, cs)) or 'not measured',
                 by_step=by_step(cls[0]) if cls else {})

  cap = (res.resolve(c.capacity) or [('', '')])[0]
  protocol, template = cap
  at = lambda l: template.replace(LAYER, l)
  layers = res.layers(protocol, template) if template else []
  per_layer = {l: res.compare(arm, protocol, at(l)) for l in layers}
  verdict, top = claims_lib.capacity(per_layer)
  enc = claims_lib.encoder_output(layers)
  gains = ', '.join(f"{short_layer_name(l)} {_fmt((per_layer[l] or {}).get('gain'), '+.3f')}"
                    for l in claims_lib.backbone(layers))
  rows[2].update(verdict=verdict, measure=f'{protocol}:{template}' if template else 'not measured',
                 numbers=(f'encoder output ({enc}): {claims_lib.describe(per_layer.get(enc))}; '
                          f'largest gain at {top} (late layers: '
                          f'{", ".join(short_layer_name(l) for l in claims_lib.late_layers(layers))}'
                          f'); gains per layer: {gains}') if enc else 'not measured',
                 by_step=by_step((protocol, at(enc))) if enc else {})

  ctrl = [a for a in res.arms() if ARMS[a].role == 'control' and ARMS[a].reference == arm]
  cc = {a: gain(trans[0], a) for a in ctrl} if trans else {}
  rows[3].update(
      verdict=claims_lib.controls(t, cc), measure=rows[0]['measure'],
      numbers=(f"wave arm gain {_fmt((t or {}).get('gain'), '+.3f')} (p="
               f"{_fmt((t or {}).get('p'), '.2g')}); " + '; '.join(
                   f"{a} gain {_fmt((x or {}).get('gain'), '+.3f')}, keeps "
                   f"{_fmt(claims_lib.kept((x or {}).get('gain'), (t or {}).get('gain')), '.0%')}"
                   for a, x in cc.items())) if cc else f'no control of {arm} has results',
      by_step={s: {a: claims_lib.kept((gain(trans[0], a, s) or {}).get('gain'),
                                     (gain(trans[0], arm, s) or {}).get('gain')) for a in ctrl}
               for s in steps} if trans else {})

  others = {}
  for name, spec in (('rotation', c.rotation), ('colour', c.color)):
    m = res.resolve(spec)[:1]
    if m:
      others[name] = (m[0], gain(m[0]))
  rows[4].update(
      verdict=claims_lib.specific(t, {k: v[1] for k, v in others.items()}),
      measure=', '.join(':'.join(v[0]) for v in others.values()) or 'not measured',
      numbers=(f"translation gain {_fmt((t or {}).get('gain'), '+.3f')}; " + '; '.join(
          f"{k}: {claims_lib.describe(v[1])}, keeps "
          f"{_fmt(claims_lib.kept((v[1] or {}).get('gain'), (t or {}).get('gain')), '.0%')}"
          for k, v in others.items())) if others else 'not measured',
      by_step={s: {'translation': rows[0]['by_step'].get(s),
                   **{k: (gain(v[0], arm, s) or {}).get('gain') for k, v in others.items()}}
               for s in steps})
  return rows


def null_rows(res: Results) -> tuple[int, int]:
  """(significant, tested) rows of the null arm against random init, every protocol."""
  comps = [res.compare('null', p, path) for p in res.plan.protocols for path in res.paths(p)]
  return claims_lib.null_rate(comps)


# ---------------------------------------------------------------------------------------
# Figures.

def _png(fig) -> bytes:
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=90, bbox_inches='tight')
  plt.close(fig)
  return buf.getvalue()


def _colors(arms):
  cmap = plt.get_cmap('tab20')
  out = {a: cmap(i % 20) for i, a in enumerate(arms)}
  out['random_init'] = (0.3, 0.3, 0.3, 1.0)
  return out


def _per_layer_panels(res: Results, protocol: str, templates: list[str], title: str,
                      ncols: int = 3) -> Optional[bytes]:
  templates = [t for t in templates if len(res.layers(protocol, t)) >= 2]
  if not templates:
    return None
  arms = res.arms()
  colors = _colors(arms)
  nrows = -(-len(templates) // ncols)
  cols = min(ncols, len(templates))
  fig, axes = plt.subplots(nrows, cols, squeeze=False, figsize=(4.2 * cols, 3.2 * nrows))
  for ax, template in zip(axes.flat, templates):
    layers = res.layers(protocol, template)
    x = np.arange(len(layers))
    for arm in arms:
      vals = [res.values(arm, protocol, template.replace(LAYER, l), res.final) for l in layers]
      vals = [[v for v in vs if v is not None] for vs in vals]
      mean = [np.mean(v) if v else np.nan for v in vals]
      std = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals]
      ax.errorbar(x, mean, yerr=std, label=arm, color=colors[arm], marker='o', ms=3,
                  capsize=2, lw=1.5 if arm == 'random_init' else 1)
    ax.set_xticks(x, [short_layer_name(l) for l in layers], rotation=60, fontsize=7)
    ax.set_title(template.replace('/' + LAYER, ''), fontsize=9)
  for ax in list(axes.flat)[len(templates):]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=6, ncol=2)
  fig.suptitle(f'{title} [{protocol}], step {res.final}, mean +- std over seeds', fontsize=10)
  fig.tight_layout()
  return _png(fig)


_GEOMETRY = ('alpha', 'radius', 'dimension')


def _templates(res: Results, protocol: str) -> list[str]:
  out = {}
  for path in res.paths(protocol):
    template, layer = split_layer(path)
    if layer is not None:
      out[template] = None
  return list(out)


def _is_geometry(template: str) -> bool:
  parts = template.split('/')
  return ('capacity' in parts or 'manifolds' in parts) and any(g in parts for g in _GEOMETRY)


def accuracy_figure(res: Results, protocol: str) -> Optional[bytes]:
  templates = [t for t in _templates(res, protocol)
               if not ({'capacity', 'manifolds'} & set(t.split('/')))]
  return _per_layer_panels(res, protocol, templates, 'Accuracy per layer')


def capacity_figure(res: Results, protocol: str) -> Optional[bytes]:
  templates = [t for t in _templates(res, protocol) if _is_geometry(t)]
  metric = lambda t: next(_GEOMETRY.index(g) for g in _GEOMETRY if g in t.split('/'))
  kind = lambda t: t.replace(_GEOMETRY[metric(t)], '')
  templates.sort(key=lambda t: (kind(t), metric(t)))
  return _per_layer_panels(res, protocol, templates, 'Capacity, radius and dimension per layer')


def steps_figure(res: Results, claim_rows: list[dict]) -> Optional[bytes]:
  if len(res.steps) < 2 or not any(r['by_step'] for r in claim_rows):
    return None
  fig, axes = plt.subplots(1, 5, figsize=(20, 3.4))
  for ax, row in zip(axes, claim_rows):
    series = {}
    for s, v in row['by_step'].items():
      if isinstance(v, dict):
        for k, x in v.items():
          series.setdefault(k, []).append((s, x))
      else:
        series.setdefault('gain', []).append((s, v))
    for k, pts in series.items():
      pts = [(s, x) for s, x in pts if x is not None]
      if pts:
        ax.plot(*zip(*pts), marker='o', label=k)
    ax.axhline(claims_lib.MOST if row['claim'] == '4' else 0.0, color='gray', lw=0.8, ls='--')
    ax.set_title(f"claim {row['claim']}: " + ('fraction of the gain kept'
                                              if row['claim'] in ('4',) else 'gain over random init'),
                 fontsize=9)
    ax.set_xlabel('training step', fontsize=8)
    if series:
      ax.legend(fontsize=6)
  fig.tight_layout()
  return _png(fig)


# ---------------------------------------------------------------------------------------
# Blocks -> Markdown and HTML.

def _md(blocks) -> str:
  out = []
  for b in blocks:
    kind = b[0]
    if kind == 'h':
      out.append('#' * b[1] + ' ' + b[2])
    elif kind == 'p':
      out.append(b[1])
    elif kind == 'pre':
      out.append('```\n' + b[1] + '\n```')
    elif kind == 'table':
      headers, rows = b[1], b[2]
      esc = lambda s: str(s).replace('|', '\\|').replace('\n', ' ')
      out.append('| ' + ' | '.join(map(esc, headers)) + ' |\n|' + ' --- |' * len(headers)
                 + ''.join('\n| ' + ' | '.join(map(esc, r)) + ' |' for r in rows))
    elif kind == 'img':
      out.append(f'![{b[2]}]({b[1]})')
  return '\n\n'.join(out) + '\n'


def _html(blocks, images: dict) -> str:
  out = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>rwjax experiment</title>'
         '<style>body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}'
         'table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid '
         '#ccc;padding:2px 6px;text-align:left;vertical-align:top}th{background:#eee}'
         'img{max-width:100%}pre{background:#f6f6f6;padding:0.5em;overflow-x:auto}'
         '.held{background:#cfc}.not-held{background:#fcc}.inconclusive{background:#ffc}'
         '</style></head><body>']
  for b in blocks:
    kind = b[0]
    if kind == 'h':
      out.append(f'<h{b[1]}>{html.escape(b[2])}</h{b[1]}>')
    elif kind == 'p':
      out.append(f'<p>{html.escape(b[1])}</p>')
    elif kind == 'pre':
      out.append(f'<pre>{html.escape(b[1])}</pre>')
    elif kind == 'table':
      cls = lambda v: (f' class="{v.replace(" ", "-")}"' if v in (
          claims_lib.HELD, claims_lib.NOT_HELD, claims_lib.INCONCLUSIVE) else '')
      out.append('<table><tr>' + ''.join(f'<th>{html.escape(str(h))}</th>' for h in b[1])
                 + '</tr>' + ''.join('<tr>' + ''.join(
                     f'<td{cls(str(v))}>{html.escape(str(v))}</td>' for v in r) + '</tr>'
                                     for r in b[2]) + '</table>')
    elif kind == 'img':
      data = base64.b64encode(images[b[1]]).decode()
      out.append(f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                 f'<figcaption>{html.escape(b[2])}</figcaption></figure>')
  out.append('</body></html>')
  return '\n'.join(out)


# ---------------------------------------------------------------------------------------
# The report.

def batchnorm_modes(e) -> str:
  """'features mode / manifolds mode' of an evaluate config (rwjax.eval.batchnorm; the
  manifold analysis's own mode, config.capacity.batchnorm, defaults to config.batchnorm)."""
  if e is None:
    return '-'
  mode = e.batchnorm + (f' ({e.batchnorm_batch} images)' if e.batchnorm == 'batch'
                        and e.batchnorm_batch else '')
  return f'{mode} / {e.capacity.batchnorm or e.batchnorm}'


def _timing(plan) -> list[list]:
  rows = []
  for run in sorted(plan.runs, key=lambda r: (r.arm, r.seed)):
    path = os.path.join(run.dir, 'timing.json')
    if paths_lib.exists(path):
      t = paths_lib.read_json(path)
      rows.append([run.arm, run.seed, f"{t['train_s']:.0f}", f"{t['eval_s']:.0f}"])
  return rows


def write(plan, results: dict, machine: dict, elapsed_s: float) -> dict:
  """Writes the report files; returns {'claims': rows, 'other_claims', 'null', 'files'}."""
  from rwjax.experiment import ARMS, CLAIMS_ARMS, _json  # pylint: disable=g-import-not-at-top
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
            'number below is one per network (the evaluator\'s value), compared with the '
            f'random-init networks by {claims_lib.TEST}. Nothing is tuned per arm.'))

  add(('h', 2, 'Claims'))
  add(('p', f'Rules (rwjax/eval/claims.py, fixed before any result): significance p < '
            f'{claims_lib.ALPHA}; "most" of a gain = more than {1 - claims_lib.MOST:.0%} of '
            'it lost, i.e. a control keeps less than '
            f'{claims_lib.MOST:.0%} of the wave arm\'s gain. Verdicts at step {res.final}.'))
  arm = plan.claims_arm or next((a for a in CLAIMS_ARMS if a in res.r), None)
  rows = evaluate_claims(res, arm)
  by_step = lambda r: '; '.join(
      f"{s}: " + (', '.join(f'{k} {_fmt(v, "+.3f")}' for k, v in x.items())
                  if isinstance(x, dict) else _fmt(x, '+.3f'))
      for s, x in r['by_step'].items())
  add(('p', f'Wave arm: {arm} ({ARMS[arm].describe if arm else "none ran"}).'))
  add(('table', ['#', 'claim', 'verdict', 'numbers', 'measure', 'measure against steps'],
       [[r['claim'], r['text'], r['verdict'], r['numbers'], r['measure'], by_step(r)]
        for r in rows]))
  other = {}
  for a in res.arms():
    if ARMS[a].role == 'waves' and a != arm:
      other[a] = evaluate_claims(res, a)
  if other:
    add(('p', 'The same rules for the other wave arms:'))
    add(('table', ['arm'] + [f'claim {n}' for n, _ in CLAIMS],
         [[a] + [r['verdict'] for r in rs] for a, rs in other.items()]))
  sig, tested = null_rows(res) if 'null' in res.r else (0, 0)
  add(('p', f'Null arm (random inits of other seeds standing in as pre-trained): {sig} of '
            f'{tested} rows "significant" at p < {claims_lib.ALPHA} '
            f'(rate {_fmt(sig / tested if tested else None, ".2f")}; about '
            f'{claims_lib.ALPHA} is what trustworthy tests give).' if tested else
            'Null arm: no results.'))
  figure('claims_vs_steps', steps_figure(res, rows),
         "Each claim's measure against training steps (claim 4: fraction of the gain each "
         'control keeps; claim 5: the rotation and colour gains).')

  add(('h', 2, 'Figures'))
  for p in plan.protocols:
    figure(f'accuracy_{p}', accuracy_figure(res, p), f'Accuracy per layer, protocol {p}')
    figure(f'capacity_{p}', capacity_figure(res, p),
           f'Capacity, radius and dimension per layer, protocol {p}')

  add(('h', 2, 'Arms'))
  add(('table', ['arm', 'role', 'what', 'overrides of config.pretrain', 'status'],
       [[a, ARMS[a].role, ARMS[a].describe,
         ', '.join(f'{k}={v!r}' for k, v in ARMS[a].overrides.items()),
         s if s != 'run' else ('ran' if a in res.r else 'no results yet')]
        for a, s in plan.arms.items()]))
  add(('h', 2, 'Evaluation protocols'))
  add(('table', ['protocol', 'preset', 'BatchNorm (features / manifolds)', 'status',
                  'overrides not applied (no such key)'],
       [[p, config.protocols[p].preset, batchnorm_modes(plan.protocols.get(p)), s,
         ', '.join(plan.not_applied.get(p, [])) or '-']
        for p, s in plan.protocol_status.items()]))

  for p in plan.protocols:
    add(('h', 2, f'Every measure, protocol {p} (step {res.final})'))
    add(('p', 'Cells: mean +- std over pre-training networks (gain over random init, Welch '
              "p across networks, Cohen's d)."))
    arms = [a for a in res.arms() if a != 'random_init']
    table_rows = []
    for path in res.paths(p):
      ri = res.compare('random_init', p, path)
      table_rows.append([path, _cell(ri, baseline=True)] +
                        [_cell(res.compare(a, p, path)) for a in arms])
    add(('table', ['measure', 'random_init'] + arms, table_rows))

  add(('h', 2, 'Settings and machine'))
  add(('table', ['setting', 'value'], [
      ['scale', config.scale], ['seeds', f'{config.seeds} (first {config.first_seed})'],
      ['training steps', config.pretrain.train.steps], ['evaluation steps', list(plan.steps)],
      ['devices for training', plan.n_devices], ['elapsed (this invocation)',
                                                  f'{elapsed_s:.0f} s'],
      ['only', config.only or '(whole matrix)'],
      ['only protocols', config.only_protocols or '(all)'],
      ['recordings', config.recordings or '-']]
      + [[k, v if not isinstance(v, list) else ', '.join(v)] for k, v in machine.items()]))
  movie = os.path.join(plan.paths['{movie}'], 'settings.json')
  if paths_lib.exists(movie):
    add(('p', 'Movie of the file-source arms: ' + paths_lib.read_json(movie)['command']))
  if plan.recordings or plan.rejected:
    add(('p', f'Recordings used: {[os.path.basename(r) for r in plan.recordings]}; not used: '
              + '; '.join(f'{os.path.basename(k)} ({v})' for k, v in plan.rejected.items())))
  timing = _timing(plan)
  if timing:
    add(('table', ['arm', 'seed', 'train s', 'eval s'], timing))
  add(('p', 'The experiment config:'))
  add(('pre', json.dumps(_json(config), indent=1, sort_keys=True)))

  paths_lib.makedirs(os.path.join(plan.workdir, 'figures'))
  for path, png in images.items():
    paths_lib.write_atomic(os.path.join(plan.workdir, path), png)
  files = {'md': os.path.join(plan.workdir, 'report.md'),
           'html': os.path.join(plan.workdir, 'report.html'),
           'json': os.path.join(plan.workdir, 'results.json')}
  paths_lib.write_atomic(files['md'], _md(blocks))
  paths_lib.write_atomic(files['html'], _html(blocks, images))
  summary = {'claims_arm': arm, 'claims': rows, 'other_claims': other,
             'null': {'significant': sig, 'tested': tested}, 'arms': plan.arms,
             'protocols': plan.protocol_status, 'steps': list(plan.steps),
             'results': {a: {str(s): v for s, v in by.items()} for a, by in results.items()},
             'machine': machine, 'files': files}
  paths_lib.write_atomic(files['json'], json.dumps(summary, indent=1, default=str))
  return summary

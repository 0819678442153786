"""Estimating a PMT model from the registry's consumption data, and judging it on held-out households.

The registry's ``household_consumption`` (true consumption per adult equivalent for
synthetic data) stands in for a household income and expenditure survey. From it:

1. :func:`load_design` pulls, in one SQL statement, every surveyed household's
   indicators with the very expressions the scoring statement uses
   (:data:`isps.targeting.pmt.INDICATORS` over :func:`isps.targeting.pmt._member_aggregates`),
   so a model is estimated on exactly what it will be scored on.
2. :func:`holdout_mask` splits households deterministically by a hash of their id
   (30% held out by default): the same registry always gives the same split, and a
   household stays on its side when others are added.
3. Estimators, fitted for urban and rural households separately on log consumption
   per adult equivalent: ordinary least squares (:func:`fit_ols`) and a quantile
   regression at tau = 0.25 (:func:`fit_quantile`), which fits the lower part of
   the distribution, near the poverty line, where targeting decisions are made.
   Each returns a specification in the ``pmt_v1.json`` format that
   :func:`isps.targeting.pmt.create_model` accepts.
4. :func:`evaluate` judges models on the held-out households only: R², inclusion
   and exclusion error at a coverage (default 20%), a curve over coverages 5-50%,
   and the errors of cut-offs on the 0-100 scale. The model in force is judged on
   the same households, its predictions computed from its stored coefficients.
5. :func:`fit_and_store` stores a fitted model as a draft with its evaluation;
   :func:`isps.targeting.pmt.approve` records a second person's approval, without
   which :func:`isps.targeting.pmt.activate` refuses an estimated model.

Everything numeric is NumPy; the database does the joins and aggregates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from isps.targeting import pmt
from isps.targeting.models import PmtModel

ESTIMATORS = ("ols", "quantile")
QUANTILE_TAU = 0.25
DEFAULT_COVERAGE = 0.20
MIN_COVERAGE, MAX_COVERAGE = 0.01, 0.99  # the share targeted: outside it, there is no one (or no one left) to judge
DEFAULT_HOLDOUT = 0.30
CURVE_COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 11))  # 5% .. 50%
DEFAULT_CUTOFFS = (20.0, 25.0, 30.0, 32.0, 35.0, 37.0, 40.0, 45.0, 50.0)
KAFAALAT_CUTOFF = 32.0   # BISP Kafaalat eligibility on the 0-100 scale (DOMAIN.md, item 5)
SPLIT_SALT = 0x5EED_2026_0000_0001

ESTIMATOR_LABELS = {"ols": "OLS", "quantile": f"Quantile tau={QUANTILE_TAU}", "active": "in force"}


class EstimationError(ValueError):
    pass


# --------------------------------------------------------------------------- design data

@dataclass
class DesignData:
    """Surveyed households with their indicators as NumPy columns (one entry per household).

    ``raw`` holds each indicator by name: float arrays for numeric indicators, bool
    arrays for yes/no indicators, object arrays of level codes (or None) for
    categorical ones. ``y`` is log consumption per adult equivalent.
    """

    household_id: np.ndarray
    urban: np.ndarray
    y: np.ndarray
    raw: dict[str, np.ndarray]
    on: date

    def __len__(self) -> int:
        return len(self.household_id)

    def subset(self, mask: np.ndarray) -> DesignData:
        return DesignData(self.household_id[mask], self.urban[mask], self.y[mask],
                          {k: v[mask] for k, v in self.raw.items()}, self.on)

    def column(self, key: str) -> np.ndarray:
        """One term of a specification ("indicator" or "indicator:level") as floats,
        with the scoring statement's semantics (a missing flag or level counts 0)."""
        indicator, _, level = key.partition(":")
        ind = pmt.INDICATORS[indicator]
        values = self.raw[indicator]
        if ind.kind == "numeric":
            return np.nan_to_num(values.astype(float), nan=0.0)
        if ind.kind == "flag":
            return values.astype(float)
        return (values == level).astype(float)


def candidate_terms() -> list[str]:
    """Every term an estimator may use: numeric and yes/no indicators as they are, categorical
    indicators one-hot with their first level (in :data:`pmt.INDICATORS` order) as the baseline."""
    terms: list[str] = []
    for name, ind in pmt.INDICATORS.items():
        if ind.kind == "category":
            terms += [f"{name}:{level}" for level in ind.levels[1:]]
        else:
            terms.append(name)
    return terms


def _as_float(values: Sequence) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def load_design(session: Session, on: date | None = None) -> DesignData:
    """Indicators and log consumption of every household with a consumption record, in one query.

    Ages (for the dependency ratio) are taken on ``on`` (default today), as scoring does.
    """
    on = on or date.today()
    exprs = ", ".join(f"{ind.sql} AS {name}" for name, ind in pmt.INDICATORS.items())
    stmt = pmt._bind_dates(text(f"""
        SELECT h.id AS household_id, h.urban AS urban_flag, c.consumption_pae AS consumption_pae, {exprs}
        FROM household h
        JOIN household_consumption c ON c.household_id = h.id
        LEFT JOIN ({pmt._member_aggregates()}) m ON m.household_id = h.id
        WHERE c.consumption_pae > 0
        ORDER BY h.id"""))
    result = session.execute(stmt, pmt._age_params(on))
    names = list(result.keys())
    rows = result.fetchall()
    if not rows:
        raise EstimationError("no household has a consumption record; there is nothing to estimate from")
    cols = dict(zip(names, zip(*rows)))
    raw: dict[str, np.ndarray] = {}
    for name, ind in pmt.INDICATORS.items():
        values = cols[name]
        if ind.kind == "numeric":
            raw[name] = _as_float(values)
        elif ind.kind == "flag":
            raw[name] = np.array([bool(v) for v in values], dtype=bool)
        else:
            raw[name] = np.array(values, dtype=object)
    return DesignData(
        household_id=np.array(cols["household_id"], dtype=np.int64),
        urban=np.array([bool(v) for v in cols["urban_flag"]], dtype=bool),
        y=np.log(_as_float(cols["consumption_pae"])),
        raw=raw, on=on)


def holdout_mask(household_ids: np.ndarray, share: float = DEFAULT_HOLDOUT) -> np.ndarray:
    """True for held-out households: a SplitMix64 hash of the id (with a fixed salt) mapped onto
    [0, 1) and compared with ``share``. Deterministic, independent of row order and of which
    other households are present."""
    with np.errstate(over="ignore"):
        z = household_ids.astype(np.uint64) ^ np.uint64(SPLIT_SALT)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u < share


# --------------------------------------------------------------------------- models in memory

def spec_of(session: Session, model: PmtModel) -> dict:
    """A stored model as a specification dict (the ``pmt_v1.json`` format)."""
    regions: dict[str, dict[str, float]] = {r: {} for r in pmt.REGIONS}
    for c in pmt.coefficients(session, model.id):
        key = c.indicator + (f":{c.level}" if c.level else "")
        regions.setdefault(c.region, {})[key] = regions.get(c.region, {}).get(key, 0.0) + float(c.weight)
    return {"name": model.name, "description": model.description, "score_floor": model.score_floor,
            "score_ceiling": model.score_ceiling, "regions": regions}


def predict(spec: dict, data: DesignData) -> np.ndarray:
    """Predicted log consumption per adult equivalent, term for term as the scoring SQL computes it."""
    out = np.zeros(len(data))
    for region, is_urban in (("urban", True), ("rural", False)):
        rows = data.urban == is_urban
        pred = np.zeros(int(rows.sum()))
        sub = data.subset(rows)
        for key, weight in spec["regions"].get(region, {}).items():
            pred += float(weight) * (1.0 if key == "intercept" else sub.column(key))
        out[rows] = pred
    return out


def to_score(spec: dict, prediction: np.ndarray) -> np.ndarray:
    """The 0-100 score of a prediction: ``score_floor`` scores 0, ``score_ceiling`` 100, clamped."""
    lo, hi = float(spec["score_floor"]), float(spec["score_ceiling"])
    return np.clip(100.0 * (prediction - lo) / (hi - lo), 0.0, 100.0)


# --------------------------------------------------------------------------- estimators

@dataclass
class RegionFit:
    terms: list[str]
    coef: np.ndarray          # intercept first, then one weight per term
    iterations: int = 1


def _region_matrix(data: DesignData, terms: Iterable[str]) -> tuple[np.ndarray, list[str]]:
    """Design matrix with a leading intercept; terms without variance in ``data`` are dropped."""
    cols, kept = [], []
    for key in terms:
        x = data.column(key)
        if len(x) and np.ptp(x) > 0:
            cols.append(x)
            kept.append(key)
    X = np.column_stack([np.ones(len(data))] + cols) if len(data) else np.empty((0, 1 + len(cols)))
    return X, kept


def _ols(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return beta


def _smoothed_check(r: np.ndarray, tau: float, h: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Check loss smoothed by convolution with a logistic kernel of bandwidth h:
    l_h(u) = (tau - 1) u + h log(1 + exp(u/h)); returns its sum, first and second derivatives."""
    z = r / h
    s = np.exp(-np.logaddexp(0.0, -z))           # logistic sigmoid, stable
    value = float(np.sum((tau - 1.0) * r + h * np.logaddexp(0.0, z)))
    return value, tau - 1.0 + s, s * (1.0 - s) / h


def _quantile(X: np.ndarray, y: np.ndarray, tau: float, bandwidths: Sequence[float] = (0.5, 0.2, 0.08, 0.03, 0.01),
              max_newton: int = 50, tol: float = 1e-10) -> tuple[np.ndarray, int]:
    """Linear quantile regression: Newton's method on a smoothed check loss, with continuation.

    The check loss rho_tau(u) = u (tau - 1[u < 0]) has a kink at 0, so it is smoothed by
    convolution with a logistic kernel of bandwidth h (as in convolution-smoothed quantile
    regression, He, Pan, Tan & Zhou 2021): l_h(u) = (tau - 1) u + h log(1 + e^(u/h)), convex
    and twice differentiable, tending to rho_tau as h -> 0. Starting from OLS, it is minimised
    by Newton steps (gradient -X'l_h'(r), Hessian X' diag(l_h''(r)) X, backtracking line search)
    for a decreasing sequence of bandwidths, each solution starting the next; the last, 0.01
    in log consumption (residuals have a spread of about 0.5), leaves a negligible smoothing bias.
    The first-order condition for the intercept makes the share of negative residuals about
    tau, the signature of a quantile fit (checked in the tests). Returns the weights and the
    number of Newton steps taken.
    """
    beta = _ols(X, y)
    steps = 0
    ridge = 1e-9 * np.eye(X.shape[1])
    for h in bandwidths:
        value, d1, d2 = _smoothed_check(y - X @ beta, tau, h)
        for _ in range(max_newton):
            grad = -X.T @ d1
            hess = X.T @ (X * d2[:, None]) + ridge
            try:
                step = np.linalg.solve(hess, -grad)
            except np.linalg.LinAlgError:
                step, *_ = np.linalg.lstsq(hess, -grad, rcond=None)
            t = 1.0
            while True:
                cand = beta + t * step
                new_value, n1, n2 = _smoothed_check(y - X @ cand, tau, h)
                if new_value <= value + 1e-4 * t * float(grad @ step) or t < 1e-8:
                    break
                t /= 2
            steps += 1
            beta, done = cand, value - new_value <= tol * max(1.0, abs(value))
            value, d1, d2 = new_value, n1, n2
            if done:
                break
    return beta, steps


def fit_regions(data: DesignData, estimator: str, tau: float = QUANTILE_TAU) -> dict[str, RegionFit]:
    """Fit ``estimator`` ("ols" or "quantile") for urban and rural households separately."""
    if estimator not in ESTIMATORS:
        raise EstimationError(f"unknown estimator '{estimator}' (known: {', '.join(ESTIMATORS)})")
    fits = {}
    for region, is_urban in (("urban", True), ("rural", False)):
        sub = data.subset(data.urban == is_urban)
        X, terms = _region_matrix(sub, candidate_terms())
        if len(sub) < 5 * X.shape[1]:
            raise EstimationError(f"{region}: {len(sub)} surveyed households are too few to estimate "
                                  f"{X.shape[1]} weights")
        if estimator == "ols":
            fits[region] = RegionFit(terms, _ols(X, sub.y))
        else:
            beta, it = _quantile(X, sub.y, tau)
            fits[region] = RegionFit(terms, beta, it)
    return fits


def _round_spec(fits: dict[str, RegionFit]) -> dict[str, dict[str, float]]:
    return {region: {"intercept": round(float(f.coef[0]), 4),
                     **{t: round(float(w), 4) for t, w in zip(f.terms, f.coef[1:])}}
            for region, f in fits.items()}


def calibrate_scale(prediction: np.ndarray, reference_score: np.ndarray,
                    cutoff: float = KAFAALAT_CUTOFF) -> tuple[float, float]:
    """``score_floor`` and ``score_ceiling`` that put a new model on the scale of the one in force.

    A new model's predictions are spread differently from the old one's (OLS predictions
    shrink toward the mean as R² falls below 1; a tau=0.25 fit sits below the mean), so
    reusing v1's floor and ceiling would make the policy cut-off 32 reach a different
    number of households. Programs and budgets are set in cut-offs, so we keep what a
    cut-off means: on the same (training) households, the new scale is fixed by two
    anchors of the reference score distribution:

    * the share p of households the reference model scores at or below the Kafaalat
      cut-off 32 — the new model's p-quantile prediction scores exactly 32, so a cut-off of
      32 covers the same share as before;
    * the median — the new model's median prediction scores the reference model's median
      score, so the spread of scores (and the meaning of 37, the disability cut-off) stays
      comparable too.

    A linear map has two degrees of freedom; these two anchors fix it.
    """
    p = float(np.mean(reference_score <= cutoff))
    s_mid = float(np.median(reference_score))
    if not 0.0 < p < 0.5 or s_mid <= cutoff:
        raise EstimationError(f"the model in force puts {p:.0%} of households at or below {cutoff:g}; "
                              "its scale cannot anchor a new model")
    q_lo, q_mid = np.quantile(prediction, [p, 0.5])
    span = 100.0 * (q_mid - q_lo) / (s_mid - cutoff)
    floor = q_lo - cutoff / 100.0 * span
    return round(float(floor), 4), round(float(floor + span), 4)


def estimate(data: DesignData, estimator: str, reference: dict, *, name: str = "NSER PMT",
             holdout: float = DEFAULT_HOLDOUT) -> dict:
    """Fit ``estimator`` on ``data`` (the training households) and return a model specification
    whose scale is calibrated to ``reference`` (the model in force) on the same households."""
    fits = fit_regions(data, estimator)
    spec = {"name": name, "score_floor": 0.0, "score_ceiling": 1.0, "regions": _round_spec(fits)}
    pred = predict(spec, data)
    spec["score_floor"], spec["score_ceiling"] = calibrate_scale(pred, to_score(reference, predict(reference, data)))
    how = "OLS" if estimator == "ols" else f"quantile regression (tau={QUANTILE_TAU}, Hunter-Lange MM)"
    spec["description"] = (f"{how} of log consumption per adult equivalent, urban and rural separately, on "
                           f"{len(data)} surveyed households ({1 - holdout:.0%} of those with consumption data, "
                           f"split by id hash); scale anchored to the model in force at cut-off "
                           f"{KAFAALAT_CUTOFF:g} and the median.")
    return spec


# --------------------------------------------------------------------------- evaluation

def _errors(truth_poor: np.ndarray, selected: np.ndarray) -> tuple[float, float]:
    """(inclusion error, exclusion error): share of the selected not poor, share of the poor not selected."""
    n_sel, n_poor = int(selected.sum()), int(truth_poor.sum())
    hit = int((truth_poor & selected).sum())
    inclusion = (n_sel - hit) / n_sel if n_sel else 0.0
    exclusion = (n_poor - hit) / n_poor if n_poor else 0.0
    return inclusion, exclusion


def _bottom(values: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` of households with the lowest values (ties broken by position, i.e. by id)."""
    k = int(round(share * len(values)))
    mask = np.zeros(len(values), dtype=bool)
    mask[np.argsort(values, kind="stable")[:k]] = True
    return mask


BOOTSTRAP_ROUNDS = 200


def _exclusion_at(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    poor = np.argpartition(y, k - 1)[:k]
    chosen = np.argpartition(pred, k - 1)[:k]
    return 1.0 - len(np.intersect1d(poor, chosen, assume_unique=True)) / k


def paired_difference(y: np.ndarray, pred: np.ndarray, pred_ref: np.ndarray, coverage: float = DEFAULT_COVERAGE,
                      rounds: int = BOOTSTRAP_ROUNDS, seed: int = 20_26) -> dict:
    """Exclusion error of ``pred`` minus that of ``pred_ref`` at ``coverage``, with a 95% interval
    from a paired bootstrap over held-out households (both models judged on each resample).

    A negative difference is an improvement; when the interval straddles zero the held-out
    sample cannot tell the two models apart. Deterministic (fixed seed).
    """
    n = len(y)
    k = int(round(coverage * n))
    diff = _exclusion_at(y, pred, k) - _exclusion_at(y, pred_ref, k)
    rng = np.random.default_rng(seed)
    draws = np.empty(rounds)
    for b in range(rounds):
        i = rng.integers(0, n, n)
        # a resample repeats households; positions keep them distinct for the set comparison
        draws[b] = _exclusion_at(y[i], pred[i], k) - _exclusion_at(y[i], pred_ref[i], k)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return {"difference": round(float(diff), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "rounds": rounds}


@dataclass
class ModelEvaluation:
    """How one model does on the held-out households."""

    key: str                  # "active", "ols", "quantile"
    label: str                # e.g. "NSER PMT v1 (in force)"
    r2: float
    inclusion_error: float    # at ``coverage``: share of the selected not among the truly poorest
    exclusion_error: float    # at ``coverage``: share of the truly poorest not selected
    curve: list[dict] = field(default_factory=list)    # {coverage, inclusion_error, exclusion_error}
    cutoffs: list[dict] = field(default_factory=list)  # {cutoff, selected_share, inclusion_error, exclusion_error}
    versus_active: dict | None = None  # paired_difference() against the model in force

    def to_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "r2": self.r2, "inclusion_error": self.inclusion_error,
                "exclusion_error": self.exclusion_error, "curve": self.curve, "cutoffs": self.cutoffs,
                "versus_active": self.versus_active}


def evaluate_model(key: str, label: str, spec: dict, data: DesignData, coverage: float = DEFAULT_COVERAGE,
                   cutoffs: Sequence[float] = DEFAULT_CUTOFFS, reference: np.ndarray | None = None
                   ) -> ModelEvaluation:
    """Judge ``spec`` on ``data`` (the held-out households).

    * R² = 1 - SSE/SST of predicted against true log consumption, out of sample. A tau=0.25
      model predicts the lower quartile, not the mean, so its R² is lower by construction;
      its ranking (the errors) is what matters for targeting.
    * At a coverage c, the truly poorest c of households (by consumption) are the target
      group and the c ranked poorest by the model are selected. With groups of equal size the
      two errors are equal in number; both are reported, as shares.
    * At a cut-off s on the 0-100 scale, the households scoring at or below s are selected and
      the target group stays the poorest ``coverage``; the errors then differ.
    * With ``reference`` (the model in force's predictions for the same households), the
      difference in exclusion error at ``coverage`` with its paired-bootstrap 95% interval.
    """
    pred = predict(spec, data)
    score = to_score(spec, pred)
    y = data.y
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / sst if sst > 0 else 0.0
    poor = _bottom(y, coverage)
    inc, exc = _errors(poor, _bottom(pred, coverage))
    curve = []
    for c in CURVE_COVERAGES:
        ci, ce = _errors(_bottom(y, c), _bottom(pred, c))
        curve.append({"coverage": c, "inclusion_error": round(ci, 4), "exclusion_error": round(ce, 4)})
    table = []
    for s in cutoffs:
        selected = score <= s
        si, se = _errors(poor, selected)
        table.append({"cutoff": float(s), "selected_share": round(float(selected.mean()), 4),
                      "inclusion_error": round(si, 4), "exclusion_error": round(se, 4)})
    versus = paired_difference(y, pred, reference, coverage) if reference is not None else None
    return ModelEvaluation(key, label, round(r2, 4), round(inc, 4), round(exc, 4), curve, table, versus)


@dataclass
class Report:
    """Models side by side on the same held-out households. ``to_text`` for the CLI,
    ``to_dict`` (and :meth:`from_dict`) for the API and for storage with a model."""

    households: int           # surveyed households (with consumption data)
    train: int
    holdout: int
    holdout_share: float
    coverage: float
    on: str                   # date on which ages were taken
    models: list[ModelEvaluation]
    created_at: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    def model(self, key: str) -> ModelEvaluation:
        for m in self.models:
            if m.key == key:
                return m
        raise KeyError(key)

    def to_dict(self) -> dict:
        return {"households": self.households, "train": self.train, "holdout": self.holdout,
                "holdout_share": self.holdout_share, "coverage": self.coverage, "on": self.on,
                "created_at": self.created_at, "split": "SplitMix64(household id) < holdout_share",
                "models": [m.to_dict() for m in self.models]}

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        return cls(d["households"], d["train"], d["holdout"], d["holdout_share"], d["coverage"], d["on"],
                   [ModelEvaluation(**m) for m in d["models"]], d.get("created_at", ""))

    def to_text(self) -> str:
        pct = lambda v: f"{100 * v:5.1f}%"  # noqa: E731
        width = max(len(m.label) for m in self.models)
        lines = [f"PMT evaluation on {self.holdout} held-out households (of {self.households} with consumption "
                 f"data; {self.train} used for fitting), ages on {self.on}",
                 "",
                 f"At {self.coverage:.0%} coverage (the poorest {self.coverage:.0%} by consumption are the target):",
                 f"  {'model':<{width}}  {'R²':>6}  {'inclusion':>9}  {'exclusion':>9}  "
                 "exclusion vs in force (95% CI)"]
        for m in self.models:
            v = m.versus_active
            vs = (f"{100 * v['difference']:+5.1f} pts ({100 * v['ci95'][0]:+.1f} to {100 * v['ci95'][1]:+.1f})"
                  if v else "")
            lines.append(f"  {m.label:<{width}}  {m.r2:6.3f}  {pct(m.inclusion_error):>9}  {pct(m.exclusion_error):>9}"
                         f"  {vs}".rstrip())
        lines += ["", "Exclusion error by coverage "
                      "(equal to the inclusion error when as many are selected as are poor):",
                  "  coverage  " + "  ".join(f"{m.key:>10}" for m in self.models)]
        for i, c in enumerate(CURVE_COVERAGES):
            lines.append(f"  {c:8.0%}  " + "  ".join(f"{pct(m.curve[i]['exclusion_error']):>10}" for m in self.models))
        if self.models and self.models[0].cutoffs:
            lines += ["", f"By cut-off on the 0-100 scale (target: the poorest {self.coverage:.0%}); "
                          "selected share / inclusion / exclusion:",
                      "  cut-off  " + "  ".join(f"{m.key:>23}" for m in self.models)]
            for i, row in enumerate(self.models[0].cutoffs):
                cells = []
                for m in self.models:
                    r = m.cutoffs[i]
                    cells.append(f"{pct(r['selected_share'])} {pct(r['inclusion_error'])} {pct(r['exclusion_error'])}")
                lines.append(f"  {row['cutoff']:7g}  " + "  ".join(f"{c:>23}" for c in cells))
        return "\n".join(lines)


# --------------------------------------------------------------------------- orchestration

def _reference(session: Session) -> tuple[PmtModel | None, dict]:
    """The model in force (or, on a registry without one, the shipped v1 specification)."""
    model = pmt.active_model(session)
    if model is not None:
        return model, spec_of(session, model)
    return None, pmt.shipped_specs()[0]


def _label(key: str, model: PmtModel | None = None) -> str:
    if model is not None:
        return f"{model.name} v{model.version} ({'in force' if model.status == 'active' else model.status})"
    return ESTIMATOR_LABELS.get(key, key)


@dataclass
class Comparison:
    report: Report
    specs: dict[str, dict]      # key -> specification ("active" and each estimator)


def compare(session: Session, estimators: Sequence[str] = ESTIMATORS, *, coverage: float = DEFAULT_COVERAGE,
            holdout: float = DEFAULT_HOLDOUT, cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
            on: date | None = None, progress: Callable[[str], None] | None = None) -> Comparison:
    """Fit each estimator on the training households and judge it beside the model in force,
    all on the same held-out households. Nothing is stored. ``progress`` is told each step
    in words (a page shows it while the work runs in the background)."""
    say = progress or (lambda step: None)
    if not MIN_COVERAGE <= coverage <= MAX_COVERAGE:  # also refuses nan
        raise EstimationError(f"coverage must be a share from {MIN_COVERAGE:g} to {MAX_COVERAGE:g}, not {coverage:g}")
    say("reading the surveyed households' indicators and consumption")
    data = load_design(session, on)
    test = holdout_mask(data.household_id, holdout)
    train_d, test_d = data.subset(~test), data.subset(test)
    if len(test_d) < 20:
        raise EstimationError(f"only {len(test_d)} households are held out; too few to evaluate")
    if round(coverage * len(test_d)) < 1:
        raise EstimationError(f"coverage {coverage:g} targets no one of the {len(test_d)} held-out households")
    active, ref_spec = _reference(session)
    name = active.name if active is not None else ref_spec["name"]
    specs = {"active": ref_spec}
    for est in estimators:
        say(f"fitting {ESTIMATOR_LABELS.get(est, est)} on {len(train_d):,} households")
        specs[est] = estimate(train_d, est, ref_spec, name=name, holdout=holdout)
    say(f"judging the models on {len(test_d):,} held-out households")
    evals = [evaluate_model("active", _label("active", active), ref_spec, test_d, coverage, cutoffs)]
    ref_pred = predict(ref_spec, test_d)
    evals += [evaluate_model(est, _label(est), specs[est], test_d, coverage, cutoffs, ref_pred)
              for est in estimators]
    report = Report(len(data), len(train_d), len(test_d), holdout, coverage, data.on.isoformat(), evals)
    return Comparison(report, specs)


@dataclass
class Fitted:
    model: PmtModel   # stored as a draft, awaiting a second person's approval
    spec: dict
    report: Report    # this estimator beside the model in force, on the held-out households


def fit_and_store(session: Session, estimator: str, actor: str, *, coverage: float = DEFAULT_COVERAGE,
                  holdout: float = DEFAULT_HOLDOUT, cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
                  on: date | None = None, progress: Callable[[str], None] | None = None) -> Fitted:
    """Estimate a model, judge it beside the model in force, and store it as a draft.

    The draft carries its ``estimator`` and ``evaluation`` (the report as a dict); it must be
    approved by someone other than ``actor`` (:func:`approve`) before :func:`pmt.activate`
    accepts it.
    """
    cmp = compare(session, [estimator], coverage=coverage, holdout=holdout, cutoffs=cutoffs, on=on, progress=progress)
    spec = cmp.specs[estimator]
    model = pmt.create_model(session, spec, actor=actor)
    model.estimator = estimator
    report = cmp.report
    report.models[-1].label = f"{model.name} v{model.version} ({ESTIMATOR_LABELS[estimator]}, draft)"
    model.evaluation = report.to_dict()
    session.flush()
    return Fitted(model, spec, report)


def approve(session: Session, model_id: int, approver: str) -> PmtModel:
    """Maker-checker approval of a draft model; see :func:`isps.targeting.pmt.approve`."""
    return pmt.approve(session, model_id, approver)


def stored_report(model: PmtModel) -> Report | None:
    """The evaluation stored with an estimated model, as a :class:`Report`."""
    return Report.from_dict(model.evaluation) if model.evaluation else None

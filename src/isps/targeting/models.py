"""A PMT model is data: versioned coefficients per region, never code.

``pmt_model`` holds a version with its status and the mapping of predicted log
consumption onto the NSER's 0-100 scale; ``pmt_coefficient`` holds one weight per
(region, indicator, level). ``pmt_score`` keeps one score per household per model
version, so a score always says which model produced it and old scores survive a
new model's activation.

A model estimated from the registry's consumption data (``targeting.estimation``)
records its ``estimator`` and its hold-out ``evaluation``, and must be approved by a
second person (``approved_by`` differs from ``created_by``) before it can be
activated: maker-checker.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class PmtModel(Base):
    __tablename__ = "pmt_model"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft | active | retired
    description: Mapped[str] = mapped_column(String(400), default="")
    score_floor: Mapped[float] = mapped_column(Float)    # predicted log consumption scored 0
    score_ceiling: Mapped[float] = mapped_column(Float)  # predicted log consumption scored 100
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # estimated models (targeting.estimation): how, how well on held-out households, and who approved
    estimator: Mapped[str | None] = mapped_column(String(20), nullable=True)  # ols | quantile; None: hand-made
    evaluation: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PmtCoefficient(Base):
    """Weight of one indicator in one region. ``level`` names the category of a categorical
    indicator ("roof" = "rcc"); numeric and yes/no indicators have an empty level."""

    __tablename__ = "pmt_coefficient"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("pmt_model.id"), index=True)
    region: Mapped[str] = mapped_column(String(8))  # urban | rural
    indicator: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(20), default="")
    weight: Mapped[float] = mapped_column(Float)


class PmtScore(Base):
    __tablename__ = "pmt_score"
    model_id: Mapped[int] = mapped_column(ForeignKey("pmt_model.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    score: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (Index("ix_pmt_score_model_district_score", "model_id", "district_id", "score"),)

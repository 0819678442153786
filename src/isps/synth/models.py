"""Ground truth that only synthetic data has: which records are the same real person."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base


class SynthTruth(Base):
    __tablename__ = "synth_truth"
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    person_key: Mapped[int] = mapped_column(BigInteger, index=True)

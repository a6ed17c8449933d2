"""Long-history compression for chat requests (pure: no I/O, no event loop).

``compress_history`` keeps the system prompt and the last turns verbatim and, of older
turns, the sentences that matter most: sentences are ranked by PageRank over a BM25
similarity graph, each older turn's retention ratio is chosen by simulated annealing
under the token budget, and a previous result keeps older turns stable across calls.
Token counts come from a ``TokenCounter``: ``EstimatingCounter`` here, or an adapter
over a lane's ``/tokenize`` outside this package.
"""

from __future__ import annotations

from qwend.compress.counting import EstimatingCounter, TokenCounter, count_messages
from qwend.compress.history import compress_history
from qwend.compress.model import Budget, CompressionResult, TurnReport

__all__ = [
    "Budget",
    "CompressionResult",
    "EstimatingCounter",
    "TokenCounter",
    "TurnReport",
    "compress_history",
    "count_messages",
]

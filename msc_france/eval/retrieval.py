"""Cross-sensor retrieval: each test tile of one sensor queries the same test tiles of another."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def match_ranks(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """(N,) rank of the true match ``gallery[i]`` for ``query[i]`` by cosine similarity (0 = first).

    Ties count against the query, so constant or collapsed embeddings score at chance, not at 1.
    """
    if query.shape != gallery.shape:
        raise ValueError(f"query {tuple(query.shape)} and gallery {tuple(gallery.shape)} must hold the same tiles")
    similarity = F.normalize(query.float(), dim=1) @ F.normalize(gallery.float(), dim=1).T
    true = similarity.diagonal().unsqueeze(1)
    return (similarity >= true).sum(dim=1) - 1


def recall_at(query: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """``{"R@k": fraction of queries whose true match is among the k most similar}``."""
    return recall_of(match_ranks(query, gallery), ks)


def recall_of(ranks: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k from the ranks of ``match_ranks``."""
    return {f"R@{k}": float((ranks < k).float().mean()) for k in ks}


def chance(n: int, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k of a random ranking among ``n`` tiles."""
    return {f"R@{k}": min(k, n) / n for k in ks}

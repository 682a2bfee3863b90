"""Merchant accounts: who may bid, with which token, up to which purchase limit.

The accounts file (``PRICING_MERCHANTS_FILE``, JSON) holds each account's id, name, role
(``merchant`` or ``cooperative``), purchase limit and the SHA-256 of its token. Tokens are 32
random bytes shown once when the account is made (``melon-pricing merchants add``); only their
hash is stored, so the file does not let anyone act as a merchant. A plain hash is enough for
random 256-bit tokens: there is nothing to guess from a dictionary.

Credit: a merchant's limit covers what their resting bids could still cost (remaining kg x price)
plus what their trades cost. The API checks a new or amended bid against what is left, so a bid
that would go over the limit is refused with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from melon_contracts.units import fen_to_yuan, yuan_to_fen
from pricing.domain.errors import PricingError

Role = Literal["merchant", "cooperative"]


class NotAuthenticated(PricingError):
    """No token, or a token no account has."""


class Forbidden(PricingError):
    """The account may not do this (another merchant's bid, a cooperative-only action)."""


class CreditExceeded(PricingError):
    """The bid would take the merchant over their purchase limit."""

    def __init__(self, cost_fen: int, credit: Credit) -> None:
        cost, left, limit = (
            fen_to_yuan(cost_fen),
            fen_to_yuan(credit.remaining_fen),
            fen_to_yuan(credit.limit_fen),
        )
        super().__init__(
            f"this bid may cost {cost} yuan; {left} yuan of the {limit} yuan limit is left"
        )
        self.message_zh = f"出价需 {cost} 元，剩余额度 {left} 元（额度 {limit} 元）"


@dataclass(frozen=True)
class Account:
    merchant_id: str
    name: str
    role: Role
    credit_limit_fen: int
    token_sha256: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Accounts:
    """The accounts of the hall, loaded from their file; thread-safe."""

    def __init__(self, accounts: list[Account] | None = None, path: Path | None = None) -> None:
        self._path = path
        self._accounts = {a.merchant_id: a for a in accounts or []}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Accounts:
        if not path.exists():
            return cls(path=path)
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls([Account(**row) for row in data["accounts"]], path=path)

    def save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(a) for a in sorted(self._accounts.values(), key=lambda a: a.merchant_id)]
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"accounts": rows}, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        temporary.replace(self._path)

    def add(
        self,
        merchant_id: str,
        name: str,
        credit_limit_fen: int,
        role: Role = "merchant",
        token: str | None = None,
    ) -> str:
        """Make (or renew) an account; returns its token, which is not stored."""
        chosen = token or secrets.token_urlsafe(32)
        with self._lock:
            self._accounts[merchant_id] = Account(
                merchant_id, name, role, credit_limit_fen, token_hash(chosen)
            )
        self.save()
        return chosen

    def authenticate(self, authorization: str | None) -> Account:
        """The account of an ``Authorization: Bearer <token>`` header."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise NotAuthenticated("send your merchant token as 'Authorization: Bearer <token>'")
        digest = token_hash(authorization[7:].strip())
        with self._lock:
            for account in self._accounts.values():
                if hmac.compare_digest(account.token_sha256, digest):
                    return account
        raise NotAuthenticated("that token belongs to no account")

    def get(self, merchant_id: str) -> Account | None:
        with self._lock:
            return self._accounts.get(merchant_id)

    def all(self) -> list[Account]:
        with self._lock:
            return sorted(self._accounts.values(), key=lambda a: a.merchant_id)


@dataclass(frozen=True)
class Credit:
    limit_fen: int
    committed_fen: int
    spent_fen: int

    @property
    def remaining_fen(self) -> int:
        return self.limit_fen - self.committed_fen - self.spent_fen


class CreditBook:
    """What each merchant's bids may still cost and what their trades cost.

    Fed from ``bid.updates`` (the latest state of every bid) and ``trades``; bids the API sent but
    the matcher has not reported yet count as committed at their full amount until it does.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._committed: dict[str, dict[str, int]] = {}
        """merchant -> bid id -> what the bid may still cost, fen."""
        self._pending: dict[str, dict[str, int]] = {}
        self._spent: dict[str, int] = {}
        self._trades_seen: set[str] = set()

    @contextmanager
    def reserving(self, merchant: Account, bid_id: str, cost_fen: int) -> Iterator[None]:
        """Check a bid against the merchant's remaining credit and hold its cost while it is sent.

        The hold stays if the body runs through (the bid was published); it is released if the
        body raises (the bid never reached the book).
        """
        with self._lock:
            credit = self.credit(merchant)
            current = max(
                self._pending.get(merchant.merchant_id, {}).get(bid_id, 0),
                self._committed.get(merchant.merchant_id, {}).get(bid_id, 0),
            )
            if cost_fen - current > credit.remaining_fen:
                raise CreditExceeded(cost_fen, credit)
            previous = self._pending.setdefault(merchant.merchant_id, {}).get(bid_id)
            self._pending[merchant.merchant_id][bid_id] = cost_fen
            try:
                yield
            except BaseException:
                if previous is None:
                    self._pending[merchant.merchant_id].pop(bid_id, None)
                else:
                    self._pending[merchant.merchant_id][bid_id] = previous
                raise

    def hold(self, merchant_id: str, bid_id: str, cost_fen: int) -> None:
        """A bid on its way to the book, as read back from the log: it holds its full cost until
        the matcher reports it (the same hold ``reserving`` leaves, so taking both is one)."""
        with self._lock:
            if bid_id not in self._committed.get(merchant_id, {}):
                self._pending.setdefault(merchant_id, {})[bid_id] = cost_fen

    def bid_state(self, merchant_id: str, bid_id: str, open_cost_fen: int) -> None:
        """The matcher reported a bid: ``open_cost_fen`` is what its remaining part may cost."""
        with self._lock:
            self._pending.get(merchant_id, {}).pop(bid_id, None)
            bids = self._committed.setdefault(merchant_id, {})
            if open_cost_fen > 0:
                bids[bid_id] = open_cost_fen
            else:
                bids.pop(bid_id, None)

    def traded(self, merchant_id: str, trade_id: str, amount_fen: int) -> None:
        with self._lock:
            if trade_id in self._trades_seen:
                return
            self._trades_seen.add(trade_id)
            self._spent[merchant_id] = self._spent.get(merchant_id, 0) + amount_fen

    def credit(self, merchant: Account) -> Credit:
        with self._lock:
            # A bid being amended is both reported and pending: it holds the larger of the two
            # until the matcher reports the amendment, never both.
            reported = self._committed.get(merchant.merchant_id, {})
            pending = self._pending.get(merchant.merchant_id, {})
            committed = sum(
                max(reported.get(bid_id, 0), pending.get(bid_id, 0))
                for bid_id in reported.keys() | pending.keys()
            )
            return Credit(
                merchant.credit_limit_fen, committed, self._spent.get(merchant.merchant_id, 0)
            )


def main(argv: list[str] | None = None) -> int:
    """``melon-pricing merchants add|list``."""
    parser = argparse.ArgumentParser(prog="melon-pricing merchants")
    parser.add_argument("--file", type=Path, default=None, help="the accounts file")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="make an account and print its token (shown once)")
    add.add_argument("merchant_id")
    add.add_argument("--name", required=True)
    add.add_argument("--limit-yuan", required=True, help="purchase limit in yuan")
    add.add_argument("--role", choices=["merchant", "cooperative"], default="merchant")
    sub.add_parser("list", help="the accounts (never their tokens)")
    args = parser.parse_args(argv)
    from pricing.settings import Settings

    accounts = Accounts.load(args.file or Path(Settings().merchants_file))
    if args.command == "add":
        token = accounts.add(
            args.merchant_id, args.name, yuan_to_fen(args.limit_yuan), role=args.role
        )
        print(f"{args.merchant_id}: token {token}")
        print("The token is shown only now; the accounts file keeps its hash.")
        return 0
    for account in accounts.all():
        print(
            f"{account.merchant_id:<20} {account.role:<11} limit "
            f"{fen_to_yuan(account.credit_limit_fen)} yuan  {account.name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

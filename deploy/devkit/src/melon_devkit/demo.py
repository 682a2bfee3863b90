"""The demo hall's accounts: merchants with their purchase limits, and the cooperative.

``make run`` and the end-to-end tests make these accounts with well-known tokens
(``demo-<account id>``) so scripts, the simulated day (``melon_devkit.simday``) and people trying
the merchant page can act as them. Real accounts get random tokens.
"""

from __future__ import annotations

from pricing.accounts import Role

DEMO_ACCOUNTS: list[tuple[str, str, str, Role]] = [
    ("merchant-lanzhou", "兰州果品批发", "50000", "merchant"),
    ("merchant-xian", "西安鲜果行", "50000", "merchant"),
    ("shop-online-01", "蜜瓜网店", "20000", "merchant"),
    ("merchant-chengdu", "成都果业", "50000", "merchant"),
    ("merchant-zhengzhou", "郑州鲜果批发", "50000", "merchant"),
    ("coop-minqin", "民勤蜜瓜合作社", "0", "cooperative"),
]
"""Accounts the demo hall makes: id, name, purchase limit in yuan, role."""


def demo_token(account_id: str) -> str:
    """The demo hall's token of an account. Demo only: real accounts get random tokens."""
    return f"demo-{account_id}"

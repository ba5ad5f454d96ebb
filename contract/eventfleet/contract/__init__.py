"""What the gateway, the consumers and the operator must agree on, in one place that imports no
component: the event model and its parser (`events`), the strict JSON reader every entry uses
(`strict_json`), and the names that cross process boundaries (`names`: modes, boards, periods,
the default topic, Redis key formats)."""

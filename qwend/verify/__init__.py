"""``qwenctl verify``: a deployment verification report (environment, endpoints, routes,
latency, QPS, GSM8K accuracy) with a verdict per section."""

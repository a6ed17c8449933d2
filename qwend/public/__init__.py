"""The public endpoints: API keys, body limits, and the app forwarding to the router or a role."""

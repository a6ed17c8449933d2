"""The control API served on the Unix socket: app, context, event and log streams, views."""

"""What a control-socket client needs: messages, their codec, and the client."""

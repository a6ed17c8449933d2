"""This host among its peers: the peer listener's credentials, the peer links, the cluster view."""

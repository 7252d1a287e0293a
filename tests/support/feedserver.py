"""The loopback feed server the tests use: the same one `seedwatch demo` serves feeds with."""

from seedwatch.demo.server import FeedServer, Route, SeenRequest, rss

__all__ = ["FeedServer", "Route", "SeenRequest", "rss"]

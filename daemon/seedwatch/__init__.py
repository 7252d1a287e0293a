"""seedwatch: poll feeds, fold stories, score against seeds, alert on watch rules.

The pipeline, one module (or package) a stage::

    config/ -> scheduler -> fetch -> parse -> normalize -> stories -> classify/ -> rules/
            -> storage/ (item + story + outbox alerts in one transaction) -> alerts/ (delivery)

``pipeline.process`` strings the pure stages together; ``daemon`` runs the ticks.
"""

__version__ = "0.1.0"

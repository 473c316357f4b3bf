"""The metric machinery: the core contract (``MetricSpec``, the core, self and state families),
the exposition, label safety and cardinality caps. Each source declares its own families in its
package (``sources/<name>/metrics.py``)."""

"""Reports rendered from a journal: `hq journal report` (a self-contained HTML page).

* `html` -- one pass over the journal's typed events (`core.events`) into time series, per-type
            statistics and tables, rendered as HTML with inline SVG (stdlib only, no JavaScript).

Layer: a pure renderer over decoded records, beside the journal (which it does not import: the
caller reads the file with `journal.format` and hands the records over). It may import the pure
`core` only; no trio, no file or socket I/O, and nothing from server, worker, client or cli. The
next consumer of the same timeline (a dashboard) should share the fold, not copy it.
"""

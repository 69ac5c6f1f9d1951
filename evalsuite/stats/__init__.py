"""Is a change real? Statistics over the stored scores and per-document samples (numpy; the
samples are read by store/values.py in DuckDB, never looped over in Python):

    pvalues.py    exact McNemar, paired t, unpaired z; Holm and Benjamini-Hochberg corrections
    bootstrap.py  the seeded percentile bootstrap over documents, many rows at once
    paired.py     two runs compared on the documents both scored (`evalsuite compare`)
    curve.py      along a training curve: intervals, significant changes, checkpoint averaging
    signal.py     noise, signal and their ratio per family (`evalsuite stats`)
    fit.py        score against model size: named forms, a bootstrap band, a backtest
    models.py     a model's family and parameter count (the one place that asks the catalog)
"""

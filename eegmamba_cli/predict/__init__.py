"""`eegmamba predict`: a trained head on a user's recording (channels, shared pipeline, model, outputs).

    channels.py   which file channel feeds each expected channel (aliases, references, bipolar, map file)
    recording.py  EDF/BDF/GDF/FIF through MNE, only the needed channels, lazily; the NaN policy
    model.py      which checkpoint and head; how the head's data were normalised
    run.py        the recording through `pipeline.preprocess_piece` and the model -> one row per window
    output.py     CSV/JSON, summaries (stage times, seizure events, class counts), plots
"""
from .model import Head, load_head
from .run import Prediction, predict_recording

__all__ = ["Head", "Prediction", "load_head", "predict_recording"]

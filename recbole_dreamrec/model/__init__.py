from recbole_dreamrec.model.dreamrec import DreamRec

__all__ = ["DreamRec"]

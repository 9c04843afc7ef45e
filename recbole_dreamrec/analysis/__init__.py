"""Research tooling around the plugin: side-by-side comparisons (:mod:`.benchmark`, :mod:`.tables`), ablations
(:mod:`.ablation`), a checkpoint evaluated under several inference settings (:mod:`.evaluation`), the readout and
decoding analyses (:mod:`.readout`) and the look inside a trained model (:mod:`.inspection`).

These modules import the plugin's runtime (config, model, trainer, quick start); the runtime never imports them.
"""

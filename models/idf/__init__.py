"""Integer discrete flow (IDF, Hoogeboom et al. 2019) for lossless coding.

Work in progress: the training-time network and its training; the exact
integer form and the codec pipeline land with the first trained weights.
"""

//! faster-whisper (CTranslate2) model folder -> whisper.cpp ggml file.

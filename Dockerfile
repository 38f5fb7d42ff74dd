# Build the webcall binary, then ship it with the web app on a slim Debian.
FROM rust:1-bookworm AS build
# whisper.cpp builds with CMake; the Opus codec and OpenSSL (WebPush encryption) are linked
# from Debian's libraries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake libopus-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p api --bin webcall

FROM debian:bookworm-slim
# What `ldd webcall` names beyond glibc and libstdc++/libgcc (already in the image, apt needs
# them): libopus0 and libssl3; CA certificates for the HTTPS calls out (AI model, Telegram,
# push services). scripts/dockerfile-in-debootstrap.sh proves this stage without Docker.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libopus0 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app webcall && mkdir -p /app/data && chown webcall /app/data
WORKDIR /app
COPY --from=build /src/target/release/webcall /usr/local/bin/webcall
COPY static ./static
USER webcall
ENV BIND=0.0.0.0 PORT=8080 DATA_DIR=/app/data STATIC_DIR=/app/static
EXPOSE 8080
CMD ["webcall", "serve"]

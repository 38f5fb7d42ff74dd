# Build the webcall binary, then ship it with the web app on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p api --bin webcall

FROM debian:bookworm-slim
RUN useradd --system --home /app webcall && mkdir -p /app/data && chown webcall /app/data
WORKDIR /app
COPY --from=build /src/target/release/webcall /usr/local/bin/webcall
COPY static ./static
USER webcall
ENV BIND=0.0.0.0 PORT=8080 DATA_DIR=/app/data STATIC_DIR=/app/static
EXPOSE 8080
CMD ["webcall", "serve"]

# One image, both roles: `docker run IMAGE serve` (the default) and `docker run IMAGE agent …`.
# docs/deploy.md has the details; compose.yaml runs it with PostgreSQL.
ARG SWIFT_VERSION=6.3
FROM swift:${SWIFT_VERSION}-noble AS build
WORKDIR /src
# Dependencies first, so a source change does not fetch them again.
COPY Package.swift ./
RUN swift package resolve
COPY Sources Sources
COPY Tests Tests
COPY Benchmarks Benchmarks
RUN swift build -c release --product switchyard --static-swift-stdlib \
    && install -m 0755 "$(swift build -c release --show-bin-path)/switchyard" /usr/local/bin/switchyard

FROM ubuntu:24.04
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=* tzdata=* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/switchyard --create-home switchyard
COPY --from=build /usr/local/bin/switchyard /usr/local/bin/switchyard
USER switchyard
WORKDIR /var/lib/switchyard
# Listen on every interface inside the container; keep the data in the volume.
ENV SWITCHYARD_HTTP_HOST=0.0.0.0 \
    SWITCHYARD_DATA_DIR=/var/lib/switchyard/data
VOLUME ["/var/lib/switchyard"]
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve"]

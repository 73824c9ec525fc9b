# Orthanc Gate on the orthancteam/orthanc image: Orthanc 1.12 with the Python plugin 5, the Gate's
# venv made on the image's own Python, and a default configuration (deploy/orthanc-gate.json).
# docs/deploy.md says how to run it (docker-compose.yml: PostgreSQL, two nodes, a TLS proxy) and
# what has and has not been proven of it.
#
# Pinned: 25.2.0 is Orthanc 1.12.6, Python plugin 5.0 on Debian 12's Python 3.11, PostgreSQL
# plugin 7.2. A later tag only needs this line changed: the venv is made at build time from the
# image's own /usr/bin/python3, whatever its version (scripts/install-gate.sh).
ARG ORTHANC_IMAGE=orthancteam/orthanc:25.2.0
FROM ${ORTHANC_IMAGE}

# The code the venv is made for, and the one install script every place the Gate runs uses.
COPY pyproject.toml /opt/orthanc-gate/
COPY scripts/install-gate.sh /opt/orthanc-gate/scripts/
COPY plugin /opt/orthanc-gate/plugin
COPY schema /opt/orthanc-gate/schema
RUN /opt/orthanc-gate/scripts/install-gate.sh \
 && rm -rf /root/.cache/pip /var/lib/apt/lists/* \
 && /opt/orthanc-gate/.venv/bin/python -c "import plugin.cli, psycopg, sqlalchemy; print('gate venv ok')"

# The default configuration. The image's entrypoint merges /etc/orthanc/*.json with its
# environment variables; PythonScript in this file is what turns the Python plugin on.
COPY deploy/orthanc-gate.json /etc/orthanc/orthanc-gate.json
COPY deploy/gate-init.sh /opt/orthanc-gate/gate-init.sh
RUN ln -s /opt/orthanc-gate/.venv/bin/gatectl /usr/local/bin/gatectl \
 && mkdir -p /var/lib/orthanc-gate/state /var/lib/orthanc-gate/keys

# Answered by the Gate itself: 200 when the store and the audit can be written, 503 and why when not.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python3 -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8042/gate/health', timeout=4).status != 200)"

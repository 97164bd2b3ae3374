"""Drives botocore's own IMDS client code against the endpoint in
AWS_EC2_METADATA_SERVICE_ENDPOINT and prints what it read as JSON.

Used by TestBotocoreInterop; run with Debian's /usr/bin/python3 and
python3-botocore (1.29: the endpoint comes from the session's config, which
reads the environment variable).
"""
import json
import os

import botocore
import botocore.session
from botocore.utils import IMDSFetcher, IMDSRegionProvider, InstanceMetadataFetcher

endpoint = os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
session = botocore.session.Session()
config = {"ec2_metadata_service_endpoint": session.get_config_variable("ec2_metadata_service_endpoint")}

# The region provider botocore uses when no region is configured: PUT token,
# then GET placement/availability-zone/ with it.
region = IMDSRegionProvider(session).provide()

fetcher = IMDSFetcher(timeout=2, num_attempts=1, config=config)
token = fetcher._fetch_metadata_token()
instance_id = fetcher._get_request("latest/meta-data/instance-id", None, token).text

# No IAM role: the credential fetcher must come back empty, not fail.
creds = InstanceMetadataFetcher(timeout=2, num_attempts=1, config=config).retrieve_iam_role_credentials()

print(json.dumps({
    "botocore": botocore.__version__,
    "base_url": fetcher.get_base_url(),
    "region": region,
    "token_len": len(token or ""),
    "instance_id": instance_id,
    "credentials": creds,
}))

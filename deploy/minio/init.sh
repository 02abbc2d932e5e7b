#!/bin/sh
# One-shot MinIO setup, run by the `minio-init` service (minio/mc image) once MinIO is healthy:
#   - the lake bucket $LAKE_BUCKET, private: no anonymous access is ever granted (a new bucket has none);
#   - the ETL's own access key ($AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY), allowed to read and write that
#     bucket only, so no service but this one ever holds the MinIO root credentials.
# Safe to run again: the bucket is kept, the policy and the key's secret are refreshed.
set -eu

mc alias set local "http://minio:9000" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$LAKE_BUCKET"

policy=/tmp/lake-readwrite.json
cat >"$policy" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$LAKE_BUCKET"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$LAKE_BUCKET/*"]}
  ]
}
EOF
mc admin policy create local lake-readwrite "$policy"
mc admin user add local "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
# Attaching an already attached policy is an error in mc; what matters is the result, checked below.
mc admin policy attach local lake-readwrite --user "$AWS_ACCESS_KEY_ID" >/dev/null 2>&1 || true
mc admin user info local "$AWS_ACCESS_KEY_ID" | grep -q lake-readwrite
echo "bucket $LAKE_BUCKET ready (private); key $AWS_ACCESS_KEY_ID may read and write it"

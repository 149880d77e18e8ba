"""The Rekognition-compatible API and providers: `protocol` (the FaceProvider interface, AWS's limits and
typed values), `wire` (JSON and error table), `sigv4`, `images`, `operations`, `router` (the HTTP
endpoint) and `boto` (the FaceProvider over boto3). Nothing is imported here, so a client of `boto`
or `protocol` does not load the server side."""

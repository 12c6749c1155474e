-- Sessions waiting for authenticateClient (opened by unauthenticated
-- initiateAuthentication calls): counted at each initiateAuthentication to
-- bound them, and purged as soon as they expire.
CREATE INDEX sessions_pending ON sessions(expires_at) WHERE state = 'initiated';

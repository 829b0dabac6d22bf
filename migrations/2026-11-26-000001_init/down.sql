DROP TABLE events;
DROP TABLE login_throttle;
DROP TABLE signing_keys;
DROP TABLE sessions;
DROP TABLE users;

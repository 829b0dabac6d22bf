DROP TABLE event_hours;

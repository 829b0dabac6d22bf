DROP INDEX users_username_order;

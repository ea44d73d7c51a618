# expect: RLP001 RLP004
# The official php image's extension-install style on apache.
FROM php:8.3-apache-bookworm
RUN set -eux; \
	apt-get update; \
	apt-get install -y --no-install-recommends \
		libfreetype6-dev \
		libjpeg62-turbo-dev \
		libpng-dev \
		libzip-dev \
	; \
	docker-php-ext-configure gd --with-freetype --with-jpeg; \
	docker-php-ext-install -j "$(nproc)" gd mysqli opcache zip; \
	rm -rf /var/lib/apt/lists/*
RUN { \
		echo 'opcache.memory_consumption=128'; \
		echo 'opcache.interned_strings_buffer=8'; \
		echo 'opcache.max_accelerated_files=4000'; \
		echo 'opcache.revalidate_freq=2'; \
	} > /usr/local/etc/php/conf.d/opcache-recommended.ini
RUN a2enmod rewrite expires
VOLUME /var/www/html
COPY --chown=www-data:www-data . /var/www/html/
CMD ["apache2-foreground"]

m6wCFTJ6lGTrzzC5ab+HOzmUWXe1uyx2ayS+QRqacbPXmkj3+vGvZ/e+Oic/6m//JkAXyGDugmBmILXTRwLtAw==
